//! Analog FXO line: the hook relay is an embedded-hal 1.0 `OutputPin`, ring
//! detect an `InputPin`; ring cadences are qualified per country, answer and
//! far-end disconnect are seen as loop-current / polarity reversal.
