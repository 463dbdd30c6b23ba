// The agent desk and the supervisor board in real Chromium against real
// processes (mgmt + a simulated branch appliance with two PTY modems).
// Users (created by the test): ivan (agent, team south: line gsm1), ana
// (agent, team north: line gsm0), sofia (supervisor). Both agents start
// available.
import { scenario, check, customerSms, login, row } from "./lib.mjs";

const SOUTH_CUSTOMER = "+380501112233";
const WAITING_CUSTOMER = "+380507778899";
const XSS_CUSTOMER = "+380931234567";
const XSS = "<img src=x onerror=alert(1)>";

await scenario("desk", async ({ newPage, shot, step }) => {
  const ivan = await newPage({ name: "ivan" });
  const ana = await newPage({ name: "ana" });
  const sofia = await newPage({ name: "sofia" });
  let conversation;

  await step("agents and the supervisor log in", async () => {
    await login(ivan, "ivan");
    await login(ana, "ana");
    await login(sofia, "sofia");
    check((await ivan.textContent("[data-testid=me]"))?.includes("ivan"), "ivan's name in the header");
    await shot(ivan, "01-logged-in");
  });

  await step("a customer's SMS appears live in the inbox", async () => {
    await ivan.evaluate(() => { window.__noReload = true; });
    const t0 = Date.now();
    await customerSms(1, SOUTH_CUSTOMER, "Hello, where is my parcel 4711?");
    const r = row(ivan, SOUTH_CUSTOMER);
    await r.waitFor();
    const ms = Date.now() - t0;
    console.log(`  live: the SMS appeared in the inbox ${ms} ms after the modem got it`);
    check(await ivan.evaluate(() => window.__noReload === true), "the page was reloaded");
    check((await r.textContent())?.includes("parcel 4711"), "the row shows the message");
    conversation = await r.getAttribute("data-id");
    await shot(ivan, "02-live-sms");
  });

  await step("reply and see it delivered", async () => {
    await row(ivan, SOUTH_CUSTOMER).locator("a").click();
    await ivan.waitForSelector(`[data-conversation="${conversation}"]`);
    check((await ivan.inputValue("[data-testid=reply-line]")) === "gsm1", "the reply goes out on the customer's line");
    await ivan.fill("[data-testid=reply-text]", "It is at the branch, open until 18:00.");
    await ivan.click("[data-testid=reply-send]");
    await ivan.waitForSelector("[data-testid=tl-reply] [data-delivery='delivery.delivered']");
    await shot(ivan, "03-delivered");
  });

  await step("hold and resume", async () => {
    await ivan.click("[data-testid=act-hold]");
    await ivan.waitForSelector("[data-testid=conv-state][data-state='state.held']");
    await shot(ivan, "04-held");
    await ivan.click("[data-testid=act-resume]");
    await ivan.waitForSelector("[data-testid=conv-state][data-state='state.active']");
  });

  await step("keyboard shortcuts: h holds, u resumes, ? shows the list", async () => {
    await ivan.evaluate(() => document.activeElement?.blur());
    await ivan.keyboard.press("h");
    await ivan.waitForSelector("[data-testid=conv-state][data-state='state.held']");
    await ivan.keyboard.press("u");
    await ivan.waitForSelector("[data-testid=conv-state][data-state='state.active']");
    await ivan.keyboard.press("?");
    await ivan.waitForSelector("[data-testid=shortcuts][open]");
    await ivan.keyboard.press("Escape");
  });

  await step("tablet width: no sideways scrolling, composer reachable", async () => {
    const tablet = await newPage({ name: "ivan-tablet", viewport: { width: 820, height: 1180 } });
    await login(tablet, "ivan");
    await tablet.goto(`/desk/c/${conversation}`);
    await tablet.waitForSelector("[data-testid=reply-text]");
    const overflow = await tablet.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page scrolls sideways by ${overflow}px at 820px`);
    await tablet.locator("[data-testid=reply-text]").scrollIntoViewIfNeeded();
    check(await tablet.locator("[data-testid=reply-text]").isVisible(), "composer visible");
    await shot(tablet, "04b-tablet");
  });

  await step("another team's agent cannot see it", async () => {
    await ana.goto("/desk?tab=teams");
    await ana.waitForSelector("[data-testid=inbox-list]");
    check((await row(ana, SOUTH_CUSTOMER).count()) === 0, "ana's inbox lists ivan's conversation");
    const resp = await ana.goto(`/desk/c/${conversation}`);
    check(resp.status() === 403, `ana opening it got ${resp.status()}`);
    await shot(ana, "05-other-team-refused");
  });

  await step("resolve", async () => {
    await ivan.goto(`/desk/c/${conversation}`);
    await ivan.click("[data-testid=act-resolve]");
    await ivan.waitForSelector("[data-testid=conv-state][data-state='state.resolved']");
    await ivan.waitForSelector("[data-testid=act-reopen]");
    await shot(ivan, "06-resolved");
  });

  await step("the supervisor board updates when a conversation waits", async () => {
    await sofia.goto("/supervisor");
    const waiting = sofia.locator("[data-testid=queue-row][data-queue=south] [data-testid=queue-waiting]");
    check((await waiting.textContent())?.trim() === "0", "south starts with nobody waiting");
    // Ivan steps away: south has no available agent, the next customer waits.
    await ivan.goto("/desk");
    await ivan.selectOption("[data-testid=presence]", "away");
    await ivan.waitForSelector("[data-testid=presence][data-state=away]");
    await sofia.evaluate(() => { window.__noReload = true; });
    await customerSms(1, WAITING_CUSTOMER, "Is anybody there?");
    await sofia.waitForSelector("[data-testid=queue-row][data-queue=south] [data-testid=queue-waiting]:text-is('1')");
    check(await sofia.evaluate(() => window.__noReload === true), "the board was reloaded");
    await sofia.waitForSelector("[data-testid=waiting-item]");
    await shot(sofia, "07-board-waiting");
  });

  await step("the UI in Russian", async () => {
    const ru = await newPage({ name: "ana-ru", locale: "ru-RU" });
    await ru.goto("/login");
    check((await ru.textContent("[data-testid=login-submit]"))?.trim() === "Войти", "login button in Russian");
    await login(ru, "ana");
    check((await ru.getAttribute("html", "lang")) === "ru", "html lang=ru");
    check((await ru.textContent("[data-testid=nav-inbox]"))?.trim() === "Входящие", "nav in Russian");
    check((await ru.textContent("[data-testid=tab-mine]"))?.trim() === "Мои", "tabs in Russian");
    await shot(ru, "08-russian");
  });

  await step("an SMS with HTML renders as text", async () => {
    await ana.goto("/desk?tab=mine");
    await ana.waitForSelector("[data-testid=inbox-list]");
    await customerSms(0, XSS_CUSTOMER, XSS);
    const r = row(ana, XSS_CUSTOMER);
    await r.waitFor();
    check((await r.locator("[data-testid=row-preview]").textContent())?.trim() === XSS, "the preview shows the markup as text");
    check((await r.locator("img").count()) === 0, "an <img> element was created from customer text");
    await r.locator("a").click();
    await ana.waitForSelector("[data-testid=tl-inbound]");
    check((await ana.locator("[data-testid=tl-inbound] [data-testid=tl-text]").first().textContent())?.trim() === XSS, "the timeline shows the markup as text");
    check((await ana.locator("#timeline img").count()) === 0, "an <img> in the timeline");
    check(!ana.crosslineDialogs, "a dialog (alert) was opened");
    await shot(ana, "09-html-as-text");
  });

  await step("the supervisor merges two contacts from the customer panel", async () => {
    await sofia.goto("/desk?tab=all");
    await sofia.waitForSelector("[data-testid=inbox-list]");
    await row(sofia, WAITING_CUSTOMER).locator("a").click();
    await sofia.waitForSelector("[data-testid=merge-with]");
    await sofia.fill("[data-testid=merge-with]", SOUTH_CUSTOMER);
    await sofia.click("[data-testid=merge-send]");
    await sofia.waitForSelector(`[data-testid=identity]:has-text("${SOUTH_CUSTOMER}")`);
    check((await sofia.locator(`[data-testid=identity]:has-text("${WAITING_CUSTOMER}")`).count()) === 1, "both numbers in the panel");
    check((await sofia.locator(`[data-testid=previous] a[href^="/desk/c/${conversation}"]`).count()) === 1, "the merged contact's conversation is a previous conversation");
    await shot(sofia, "10-merged");
  });
});
