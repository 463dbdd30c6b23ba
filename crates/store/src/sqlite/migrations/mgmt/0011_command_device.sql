-- mgmt 11 (combined 14, its mgmt half): what mgmt checks of a device's
-- events (docs/PROTOCOL.md, "Trust").
--
-- mgmt: the device each conversation command (an SMS reply) is addressed to,
-- projected from `reply_requested` (mgmt's commands) and from a device's first
-- outcome of a command mgmt never issued (its offline auto-reply). A device's
-- `message_sent` and `delivery_status` are accepted only for its own commands.
-- Unlike pending_command, rows stay after the outcome arrives.
CREATE TABLE command_device (
    command TEXT PRIMARY KEY,
    device  TEXT NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO command_device (command, device)
    SELECT id, device FROM pending_command;
INSERT OR IGNORE INTO command_device (command, device)
    SELECT command, device FROM timeline_entry
    WHERE command IS NOT NULL AND device IS NOT NULL;
