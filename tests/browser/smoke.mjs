// Harness check: Debian's Chromium starts with this machine's flags, loads a
// page from the mgmt under test and leaves a screenshot.
import { scenario, check } from "./lib.mjs";

await scenario("smoke", async ({ newPage, shot, step, url }) => {
  const page = await newPage({ name: "health" });
  await step("open /healthz", async () => {
    const resp = await page.goto(url("/healthz"));
    check(resp && resp.status() === 200, `GET /healthz answered ${resp?.status()}`);
    const body = (await page.textContent("body")) ?? "";
    check(body.trim() === "ok", `/healthz said ${JSON.stringify(body)}`);
    if (url("/").startsWith("https:")) {
      const tls = await resp.securityDetails();
      check(tls && tls.protocol, `no TLS session details for ${url("/healthz")}`);
      console.log(`TLS: ${tls.protocol}, issuer ${tls.issuer}`);
    }
  });
  await shot(page, "healthz");
  await step("the login page runs under a strict Content-Security-Policy", async () => {
    const resp = await page.goto(url("/login"));
    const csp = resp.headers()["content-security-policy"] ?? "";
    check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `CSP of /login: ${JSON.stringify(csp)}`);
    check(resp.headers()["x-frame-options"] === "DENY", `X-Frame-Options: ${resp.headers()["x-frame-options"]}`);
    // htmx and app.js loaded from mgmt itself, and nothing they did was blocked.
    await page.waitForFunction(() => typeof window.htmx === "object");
    check(
      (await page.evaluate(() => document.querySelectorAll("head style").length)) === 0,
      "a <style> element was injected into the page",
    );
  });
});
