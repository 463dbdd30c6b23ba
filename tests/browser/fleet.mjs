// The admin fleet console in real Chromium (run by tests/tests/fleet_browser.rs):
// an appliance waiting with its bootstrap token is approved from the
// enrollment queue; a configuration is applied to it and its applied
// version shows; a USSD command runs and its result shows; when the test
// kills the appliance, the offline alert shows in the fleet list.
import { scenario, check, login, TIMEOUT } from "./lib.mjs";
import { writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const CONTROL = process.env.CROSSLINE_CONTROL;

/** Reloads `page` until `selector` is there (the console is not live). */
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
    await shot(page, "01-enrollment-queue");
    await row.locator("[data-testid=approve-device]").fill(device);
    await row.locator("[data-testid=approve-site]").fill("kyiv");
    await row.locator("[data-testid=approve-tags]").fill("pilot, web");
    await Promise.all([page.waitForURL(new RegExp(`/admin/fleet/d/${device}`)), row.locator("[data-testid=approve]").click()]);
    await reloadUntil(page, "[data-testid=lines-table] td:has-text('gsm0')", "the approved appliance's telemetry");
    check((await page.textContent("[data-testid=device-status]")).includes("online"), "device online after approval");
    await shot(page, "02-approved-device");
  });

  await step("change its configuration", async () => {
    await page.fill("[data-testid=config-settings]", JSON.stringify({ offline: { after_s: 60, texts: { en: "Closed for today" } } }));
    await page.click("[data-testid=config-push]");
    await reloadUntil(page, "[data-testid=config-state]:has-text('v1'):not(:has([data-testid=config-drift]))", "applied version 1");
    const state = await page.textContent("[data-testid=config-state]");
    check(/applied\s+v1/.test(state), `config state: ${state}`);
    await shot(page, "03-config-applied");
  });

  await step("run a USSD balance check", async () => {
    await page.selectOption("[data-testid=command-kind]", "ussd");
    await page.fill("[data-testid=command-code]", "*111#");
    await page.click("[data-testid=command-run]");
    await reloadUntil(page, "[data-testid=command-ussd][data-state=ok]", "USSD result");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=command-ussd] [data-testid=command-output]")]);
    const path = join(process.env.CROSSLINE_ARTIFACTS, "ussd.txt");
    await download.saveAs(path);
    const { readFileSync } = await import("node:fs");
    check(readFileSync(path, "utf8").includes("Balance"), "USSD output downloaded");
    await shot(page, "04-command-result");
  });

  await step("see the offline alert", async () => {
    check(CONTROL, "CROSSLINE_CONTROL is not set");
    writeFileSync(join(CONTROL, "kill"), "");
    const t0 = Date.now();
    while (!existsSync(join(CONTROL, "killed"))) {
      check(Date.now() - t0 < TIMEOUT, "the test did not kill the appliance");
      await page.waitForTimeout(50);
    }
    await page.goto("/admin/fleet");
    await reloadUntil(page, `[data-testid=alert-${device}-offline]`, "offline alert");
    check((await page.textContent(`[data-testid=status-${device}]`)).includes("offline"), "listed offline");
    await shot(page, "05-offline-alert");
  });

  await step("filter the fleet list", async () => {
    await page.goto("/admin/fleet?status=online");
    check((await page.locator(`[data-testid=fleet-row-${device}]`).count()) === 0, "offline device hidden by the online filter");
    await page.goto("/admin/fleet?tag=pilot&q=shop");
    check((await page.locator(`[data-testid=fleet-row-${device}]`).count()) === 1, "found by tag and search");
  });

  await step("every action is in the audit log", async () => {
    await page.goto("/admin/audit");
    const text = await page.textContent("[data-testid=audit-table]");
    for (const a of ["fleet.enrollment.approve", "fleet.config.push", "fleet.command.ussd"]) {
      check(text.includes(a), `audit log lacks ${a}`);
    }
  });
});
