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
});
