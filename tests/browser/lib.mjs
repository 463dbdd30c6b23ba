// Shared helpers for Crossline's browser scenarios.
//
// A scenario is a Node script run by tests/src/browser.rs (`run_scenario`)
// with CROSSLINE_URL (mgmt's base URL), CROSSLINE_ARTIFACTS (its screenshot
// folder) and CROSSLINE_CHROMIUM (Debian's Chromium) in the environment. It
// calls `scenario(name, async ({ browser, newPage, shot, step, url }) => ...)`;
// any thrown error fails it (exit 1) after a `failure-<page>.png` screenshot of
// every open page. Waits always have deadlines (Playwright's timeouts):
// never sleep to synchronise.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export const URL_BASE = process.env.CROSSLINE_URL ?? "http://127.0.0.1:8080";
export const ARTIFACTS = process.env.CROSSLINE_ARTIFACTS ?? "browser-artifacts";
const EXECUTABLE = process.env.CROSSLINE_CHROMIUM ?? "/usr/bin/chromium";

/** Default deadline (ms) for one wait or action. */
export const TIMEOUT = Number(process.env.CROSSLINE_BROWSER_TIMEOUT_MS ?? 15000);

// Chromium as this machine runs it: headless, no sandbox as root, and none
// of the background networking a closed network would refuse.
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Extra flags from the test, e.g. the HTTPS pin
  // (--ignore-certificate-errors-spki-list=<mgmt's key>).
  ...(process.env.CROSSLINE_CHROMIUM_ARGS ?? "").split(" ").filter(Boolean),
];

function log(msg) {
  const t = new Date().toISOString().slice(11, 23);
  console.log(`[${t}] ${msg}`);
}

/**
 * Runs one scenario. `body` gets:
 * - `newPage({ locale, viewport, name })`: a page in its own browser context
 *   (own cookies: one context per user), locale sets Accept-Language;
 * - `shot(page, name)`: screenshot into the artifacts folder;
 * - `step(title, fn)`: logs progress and the step's duration;
 * - `url(path)`: mgmt's URL for a path.
 */
export async function scenario(name, body) {
  mkdirSync(ARTIFACTS, { recursive: true });
  log(`scenario ${name}: ${URL_BASE}`);
  const browser = await chromium.launch({ executablePath: EXECUTABLE, args: ARGS, timeout: 60000 });
  const pages = [];
  const cspViolations = [];
  let n = 0;
  // `routeFetch`: the page's routes may fetch the real answer themselves
  // (`route.fetch`, node-side, which does not know the browser's HTTPS pin).
  const newPage = async ({ locale = "en-US", viewport = { width: 1280, height: 720 }, name, routeFetch = false } = {}) => {
    const context = await browser.newContext({ locale, viewport, baseURL: URL_BASE, ignoreHTTPSErrors: routeFetch });
    context.setDefaultTimeout(TIMEOUT);
    // Every Content-Security-Policy violation is reported to the console,
    // where the handler below collects it: a scenario fails if any page
    // broke the policy (an inline script or style, an eval, a foreign URL).
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.error(
          `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"} (${e.sourceFile}:${e.lineNumber})`,
        );
      });
    });
    const page = await context.newPage();
    page.crosslineName = name ?? `page${++n}`;
    page.on("pageerror", (e) => log(`${page.crosslineName}: page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      log(`${page.crosslineName}: console error: ${m.text()}`);
      if (/CSP violation|Content Security Policy/i.test(m.text())) {
        cspViolations.push(`${page.crosslineName}: ${m.text()}`);
      }
    });
    page.on("dialog", async (d) => {
      log(`${page.crosslineName}: unexpected dialog "${d.message()}"`);
      page.crosslineDialogs = (page.crosslineDialogs ?? 0) + 1;
      await d.dismiss();
    });
    pages.push(page);
    return page;
  };
  const shot = async (page, file) => {
    const path = join(ARTIFACTS, `${file}.png`);
    await page.screenshot({ path, fullPage: true });
    log(`screenshot ${path}`);
    return path;
  };
  const step = async (title, fn) => {
    const t0 = Date.now();
    log(`step: ${title}`);
    const r = await fn();
    log(`  ok (${Date.now() - t0} ms)`);
    return r;
  };
  const url = (path) => new URL(path, URL_BASE).toString();
  try {
    await body({ browser, newPage, shot, step, url });
    check(
      cspViolations.length === 0,
      `Content-Security-Policy violations:\n${cspViolations.join("\n")}`,
    );
    log(`scenario ${name}: passed`);
  } catch (e) {
    log(`scenario ${name}: FAILED: ${e?.stack ?? e}`);
    for (const p of pages) {
      try {
        await p.screenshot({ path: join(ARTIFACTS, `failure-${p.crosslineName}.png`), fullPage: true });
      } catch {}
    }
    await browser.close().catch(() => {});
    process.exit(1);
  }
  await browser.close();
}

/** Throws `message` unless `cond` holds. */
export function check(cond, message) {
  if (!cond) throw new Error(message);
}

// ----- desk helpers (web UI scenarios) -------------------------------------

import { writeFileSync, existsSync, renameSync } from "node:fs";

const CONTROL = process.env.CROSSLINE_CONTROL;
let requests = 0;

/**
 * Asks the Rust test that runs this scenario for a simulated customer SMS:
 * `from` texts the branch line `line` (0: gsm0, 1: gsm1). Resolves once the
 * simulated modem has it (the test writes `done-<n>`); the appliance and
 * mgmt take it from there.
 */
export async function customerSms(line, from, text) {
  check(CONTROL, "CROSSLINE_CONTROL is not set (run this scenario from tests/tests/browser.rs)");
  const n = ++requests;
  const tmp = join(CONTROL, `req-${n}.tmp`);
  writeFileSync(tmp, JSON.stringify({ line, from, text }));
  // Atomic: the test only reads files named req-<n>.json.
  renameSync(tmp, join(CONTROL, `req-${n}.json`));
  const done = join(CONTROL, `done-${n}`);
  const t0 = Date.now();
  while (!existsSync(done)) {
    check(Date.now() - t0 < TIMEOUT, `the test did not deliver SMS request ${n} within ${TIMEOUT} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A user's login and password, from CROSSLINE_USERS (JSON {login: password}). */
export function password(login) {
  const users = JSON.parse(process.env.CROSSLINE_USERS ?? "{}");
  check(users[login], `no password for ${login} in CROSSLINE_USERS`);
  return users[login];
}

/** Logs `page` in as `login` and waits for the desk. */
export async function login(page, login) {
  await page.goto("/login");
  await page.fill("[data-testid=login-name]", login);
  await page.fill("[data-testid=login-password]", password(login));
  await Promise.all([page.waitForURL(/\/desk/), page.click("[data-testid=login-submit]")]);
  await page.waitForSelector("[data-testid=inbox-list]");
}

/** The inbox row of the conversation whose contact is `address`. */
export function row(page, address) {
  return page.locator("[data-testid=conv-row]", { has: page.locator("[data-testid=row-contact]", { hasText: address }) });
}

/**
 * Whether `locator`'s element lies within `container`'s box (1 px of
 * slack). Default: vertically visible in it (some part, e.g. a message in a
 * scrolled list); `{ fully: true, horizontally: true }`: entirely inside
 * left to right too (nothing cut off at a panel's edge).
 */
export async function inside(locator, container, { fully = true, horizontally = false } = {}) {
  const a = await locator.boundingBox();
  const b = await container.boundingBox();
  if (!a || !b) return false;
  const v = fully
    ? a.y >= b.y - 1 && a.y + a.height <= b.y + b.height + 1
    : a.y + a.height > b.y && a.y < b.y + b.height;
  const h = !horizontally || (a.x >= b.x - 1 && a.x + a.width <= b.x + b.width + 1);
  return v && h;
}
