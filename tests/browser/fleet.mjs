// The admin fleet console in real Chromium (run by tests/tests/fleet_browser.rs):
// an appliance waiting with its bootstrap token is approved from the
// enrollment queue; a configuration is applied to it and its applied
// version shows; a USSD command runs and its result shows (the device page
// is live); when the test kills the appliance, its row turns offline and
// the offline alert shows in the fleet list without a reload; the list is
// paged and filtered (60 more devices, registered by the test, in site
// "bulk").
import { scenario, check, login, TIMEOUT } from "./lib.mjs";
import { writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const CONTROL = process.env.CROSSLINE_CONTROL;

/** Reloads `page` until `selector` is there (for what is not live: telemetry). */
async function reloadUntil(page, selector, what) {
  const t0 = Date.now();
  for (;;) {
    if ((await page.locator(selector).count()) > 0) return;
    check(Date.now() - t0 < TIMEOUT * 2, `${what}: ${selector} did not show`);
    await page.waitForTimeout(300);
    await page.reload();
  }
}

await scenario("fleet", async ({ newPage, shot, step }) => {
  const page = await newPage({ name: "admin" });
  await step("log in as admin", () => login(page, "root"));

  const device = "shop-web";
  await step("approve the waiting appliance", async () => {
    await page.click("[data-testid=nav-fleet]");
    await page.click("[data-testid=fleet-enrollments-link]");
    const row = page.locator("tr", { has: page.locator("[data-testid=serial]", { hasText: "serial-web-1" }) });
    await reloadUntil(page, "[data-testid=serial]:has-text('serial-web-1')", "pending appliance");
    // Its hardware identity: the simulated modem's IMEI, a MAC, the serial.
    const pending = await row.textContent();
    check(pending.includes("IMEI 861234051234567"), `the pending row shows the modem's IMEI: ${pending}`);
    check(/MAC [0-9a-f]{2}(:[0-9a-f]{2}){5}/.test(pending), `the pending row shows a MAC: ${pending}`);
    await shot(page, "01-enrollment-queue");
    await row.locator("[data-testid=approve-device]").fill(device);
    await row.locator("[data-testid=approve-site]").fill("kyiv");
    await row.locator("[data-testid=approve-tags]").fill("pilot, web");
    await Promise.all([page.waitForURL(new RegExp(`/admin/fleet/d/${device}`)), row.locator("[data-testid=approve]").click()]);
    await reloadUntil(page, "[data-testid=lines-table] td:has-text('gsm0')", "the approved appliance's telemetry");
    check((await page.textContent("[data-testid=device-status]")).includes("online"), "device online after approval");
    await shot(page, "02-approved-device");
  });

  await step("the device page in Russian: SIM state and telemetry ranges translated", async () => {
    const ru = await newPage({ name: "admin-ru", locale: "ru-RU" });
    await login(ru, "root");
    await ru.goto(`/admin/fleet/d/${device}`);
    const sim = (await ru.textContent("[data-testid=lines-table] [data-testid=line-sim]"))?.trim();
    check(sim === "готова", `the SIM state in Russian: ${sim}`);
    const ranges = (await ru.textContent("[data-testid=telemetry-range]")) ?? "";
    check(ranges.includes("1 ч") && ranges.includes("7 дн.") && !/\b[hd]\b/.test(ranges), `telemetry ranges in Russian: ${ranges}`);
    await shot(ru, "02b-device-ru");
    await ru.context().close();
  });

  await step("change its configuration", async () => {
    await page.fill("[data-testid=config-settings]", JSON.stringify({ offline: { after_s: 60, texts: { en: "Closed for today" } } }));
    await page.click("[data-testid=config-push]");
    // Live: the applied version comes back without a reload.
    await page.waitForSelector("[data-testid=config-state]:has-text('v1'):not(:has([data-testid=config-drift]))", { timeout: TIMEOUT });
    const state = await page.textContent("[data-testid=config-state]");
    check(/applied\s+v1/.test(state), `config state: ${state}`);
    await shot(page, "03-config-applied");
  });

  await step("run a USSD balance check", async () => {
    await page.selectOption("[data-testid=command-kind]", "ussd");
    await page.fill("[data-testid=command-code]", "*111#");
    await page.click("[data-testid=command-run]");
    await page.waitForSelector("[data-testid=command-ussd][data-state=ok]", { timeout: TIMEOUT });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=command-ussd] [data-testid=command-output]")]);
    const path = join(process.env.CROSSLINE_ARTIFACTS, "ussd.txt");
    await download.saveAs(path);
    const { readFileSync } = await import("node:fs");
    check(readFileSync(path, "utf8").includes("Balance"), "USSD output downloaded");
    await shot(page, "04-command-result");
  });

  await step("re-key the appliance", async () => {
    await page.click("[data-testid=rekey]");
    // Live: the appliance stores the new secret and reconnects with it.
    await page.waitForSelector("[data-testid=rekey-state][data-state=done]", { timeout: TIMEOUT * 2 });
    await page.waitForSelector("[data-testid=device-status]:has-text('online')", { timeout: TIMEOUT });
  });

  await step("the row turns offline and the alert shows, live", async () => {
    check(CONTROL, "CROSSLINE_CONTROL is not set");
    await page.goto("/admin/fleet?site=kyiv");
    await page.waitForSelector(`[data-testid=status-${device}]:has-text('online')`, { timeout: TIMEOUT });
    await page.waitForSelector("body[data-live=on]", { timeout: TIMEOUT });
    // A reload would lose this mark.
    await page.evaluate(() => { window.crosslineMark = 1; });
    writeFileSync(join(CONTROL, "kill"), "");
    await page.waitForSelector(`[data-testid=status-${device}]:has-text('offline')`, { timeout: TIMEOUT * 2 });
    await page.waitForSelector(`[data-testid=alert-${device}-offline]`, { timeout: TIMEOUT * 2 });
    await page.waitForSelector(`[data-testid=alerts-${device}]`, { timeout: TIMEOUT });
    check((await page.evaluate(() => window.crosslineMark)) === 1, "the page was reloaded");
    check(existsSync(join(CONTROL, "killed")), "the test did not kill the appliance");
    await shot(page, "05-offline-alert");
  });

  await step("page and filter the fleet list", async () => {
    await page.goto("/admin/fleet?site=bulk");
    check((await page.textContent("[data-testid=fleet-count]")).includes("1–50 of 60"), "first page of 60");
    check((await page.locator("[data-testid^=fleet-row-]").count()) === 50, "50 rows on the first page");
    await Promise.all([page.waitForURL(/page=2/), page.click("[data-testid=fleet-next]")]);
    check(/site=bulk/.test(page.url()), `the filter stays in the URL: ${page.url()}`);
    check((await page.textContent("[data-testid=fleet-count]")).includes("51–60 of 60"), "second page");
    check((await page.locator("[data-testid^=fleet-row-]").count()) === 10, "10 rows on the second page");
    await page.locator("[data-testid=fleet-row-bulk-00059]").waitFor();
    await shot(page, "06-second-page");
    await Promise.all([page.waitForURL(/sort=name/), page.click("[data-testid=sort-name]")]);
    check((await page.textContent("[data-testid=fleet-count]")).includes("1–50 of 60"), "sorting starts at page 1");
    await page.fill("[data-testid=fleet-q]", "bulk shop 42");
    await Promise.all([page.waitForURL(/q=bulk/), page.click("[data-testid=fleet-filter]")]);
    check((await page.locator("[data-testid^=fleet-row-]").count()) === 1, "found by name");
    await page.locator("[data-testid=fleet-row-bulk-00042]").waitFor();
    await page.goto("/admin/fleet?status=online");
    check((await page.locator(`[data-testid=fleet-row-${device}]`).count()) === 0, "offline device hidden by the online filter");
    await page.goto("/admin/fleet?tag=pilot&q=shop");
    check((await page.locator(`[data-testid=fleet-row-${device}]`).count()) === 1, "found by tag and search");
  });

  await step("every action is in the audit log", async () => {
    await page.goto("/admin/audit");
    const text = await page.textContent("[data-testid=audit-table]");
    for (const a of ["fleet.enrollment.approve", "fleet.config.push", "fleet.command.ussd", "fleet.device.rekey"]) {
      check(text.includes(a), `audit log lacks ${a}`);
    }
  });
});
