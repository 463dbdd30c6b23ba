// The agent desk and the supervisor board in real Chromium against real
// processes (mgmt + a simulated branch appliance with two PTY modems).
// Users (created by the test): ivan (agent, team south: line gsm1), ana
// (agent, team north: line gsm0), sofia (supervisor). Both agents start
// available.
import { scenario, check, customerSms, login, row, inside } from "./lib.mjs";

const SOUTH_CUSTOMER = "+380501112233";
const WAITING_CUSTOMER = "+380507778899";
const XSS_CUSTOMER = "+380931234567";
const TRANSFER_CUSTOMER = "+380661234567";
const LONG_CUSTOMER = "+380671234567";
const OFFLINE_CUSTOMER = "+380505550101";
const SLOW_FIRST = "+380505550202";
const SLOW_SECOND = "+380505550303";
const UNKNOWN_NUMBER = "+380971112233";
const XSS = "<img src=x onerror=alert(1)>";
// The desk's languages and what each calls a wrong password.
const LANGUAGES = {
  "en-US": "Wrong login or password.",
  "ru-RU": "Неверный логин или пароль.",
  "uk-UA": "Неправильний логін або пароль.",
  "ro-RO": "Utilizator sau parolă greșită.",
};

await scenario("desk", async ({ newPage, shot, step }) => {
  const ivan = await newPage({ name: "ivan" });
  const ana = await newPage({ name: "ana" });
  const sofia = await newPage({ name: "sofia" });
  let conversation;

  await step("a wrong password says so, in the user's language", async () => {
    for (const [locale, message] of Object.entries(LANGUAGES)) {
      const p = await newPage({ name: `wrong-password-${locale}`, locale });
      await p.goto("/login");
      await p.fill("[data-testid=login-name]", "ana");
      await p.fill("[data-testid=login-password]", "not-her-password");
      await p.click("[data-testid=login-submit]");
      const err = p.locator("[data-testid=login-error]");
      await err.waitFor();
      check((await err.textContent())?.trim() === message, `${locale}: the login page says ${await err.textContent()}`);
      check(await p.locator("[data-testid=login-password]").isVisible(), `${locale}: the form is still there`);
      await shot(p, `00-wrong-password-${locale}`);
      await p.context().close();
    }
  });

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
    // SMS is drawn as a phone with a message, not an envelope (email).
    check((await r.locator("[data-testid=row-channel] svg[data-icon=sms]").count()) === 1, "the SMS icon");
    check(!(await r.textContent())?.includes("✉"), "an envelope on an SMS row");
    // Capacity only for channels that exist (SMS).
    const cap = (await ivan.textContent("[data-testid=capacity]")) ?? "";
    check(cap.includes("SMS"), `capacity shows SMS: ${cap}`);
    for (const absent of ["Call", "Chat", "Email", "Messenger"]) {
      check(!cap.includes(absent), `capacity shows ${absent}, a channel that does not exist: ${cap}`);
    }
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

  await step("on the board, Reassign on ivan's conversation picks nobody by itself", async () => {
    await sofia.goto("/supervisor");
    const item = sofia.locator(`[data-testid=agent-item][data-id="${conversation}"]`);
    await item.waitFor();
    const select = item.locator("[data-testid=reassign-to]");
    check((await select.inputValue()) === "", `Reassign preselects ${await select.inputValue()}`);
    check((await select.locator("option[value='agent:ivan']").count()) === 0, "ivan's conversation offers ivan");
    check((await select.locator("option[value='agent:ana']").count()) === 1, "ana is offered");
    check(await select.evaluate((s) => !s.form.checkValidity()), "one click on Reassign would submit");
    await shot(sofia, "04c-board-reassign");
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
    for (const gone of ["take", "hold", "snooze", "resume", "resolve", "transfer"]) {
      check((await ivan.locator(`[data-testid=act-${gone}]`).count()) === 0, `a resolved conversation offers ${gone}`);
    }
    await shot(ivan, "06-resolved");
  });

  await step("after a transfer the previous agent has no controls left", async () => {
    await ivan.goto("/desk");
    await customerSms(1, TRANSFER_CUSTOMER, "Can someone from north help?");
    const r = row(ivan, TRANSFER_CUSTOMER);
    await r.waitFor();
    await r.locator("a").click();
    await ivan.waitForSelector("[data-testid=act-hold]");
    const sel = ivan.locator("[data-testid=transfer-select]");
    check((await sel.inputValue()) === "", "transfer preselects someone");
    await sel.selectOption("agent:ana");
    await ivan.click("[data-testid=act-transfer]");
    await ivan.waitForSelector("[data-testid=conv-agent]:has-text('ana')");
    for (const gone of ["take", "hold", "snooze", "resume", "resolve", "transfer"]) {
      check((await ivan.locator(`[data-testid=act-${gone}]`).count()) === 0, `after the transfer ivan is offered ${gone}`);
    }
    await shot(ivan, "06b-transferred");
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

  await step("a long conversation opens at its newest message", async () => {
    const short = await newPage({ name: "ana-short", viewport: { width: 1280, height: 600 } });
    await login(short, "ana");
    for (let i = 1; i <= 12; i++) await customerSms(0, LONG_CUSTOMER, `message ${i} of 12`);
    const r = row(short, LONG_CUSTOMER);
    await r.locator("[data-testid=row-preview]:text-is('message 12 of 12')").waitFor();
    await r.locator("a").click();
    await short.waitForSelector("[data-testid=tl-inbound]:has-text('message 12 of 12')");
    const list = short.locator("#timeline .timeline");
    const items = short.locator("[data-testid=tl-inbound]");
    // The timeline is scrolled once htmx has settled the swap, a moment after
    // the message is in the page: wait for that (5 s at most), then look.
    await short
      .waitForFunction(() => {
        const l = document.querySelector("#timeline .timeline");
        return l && l.scrollHeight - l.scrollTop - l.clientHeight < 2;
      }, null, { timeout: 5000 })
      .catch(() => {});
    check(await inside(items.last(), list), "the newest message is not in view");
    check(!(await inside(items.first(), list)), "the conversation is too short to scroll (the check proves nothing)");
    await shot(short, "08b-long-conversation");
    await short.context().close();
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
    // A number that is nobody's: the page says so.
    await sofia.fill("[data-testid=merge-with]", UNKNOWN_NUMBER);
    await sofia.click("[data-testid=merge-send]");
    const err = sofia.locator("[data-testid=action-error]");
    await err.waitFor();
    check((await err.textContent())?.trim() === "No customer you may see has this number or id.", `merge error: ${await err.textContent()}`);
    await shot(sofia, "09b-merge-refused");
    await sofia.fill("[data-testid=merge-with]", SOUTH_CUSTOMER);
    await sofia.click("[data-testid=merge-send]");
    await sofia.waitForSelector(`[data-testid=identity]:has-text("${SOUTH_CUSTOMER}")`);
    check((await sofia.locator(`[data-testid=identity]:has-text("${WAITING_CUSTOMER}")`).count()) === 1, "both numbers in the panel");
    check((await sofia.locator(`[data-testid=previous] a[href^="/desk/c/${conversation}"]`).count()) === 1, "the merged contact's conversation is a previous conversation");
    await shot(sofia, "10-merged");
  });

  await step("every language: nothing cut off, every page shot", async () => {
    for (const locale of Object.keys(LANGUAGES)) {
      const lang = locale.slice(0, 2);
      for (const width of [1280, 1440, 1024]) {
        const p = await newPage({ name: `sofia-${lang}-${width}`, locale, viewport: { width, height: 800 } });
        await login(p, "sofia");
        await p.goto(`/desk/c/${conversation}?tab=all`);
        await p.waitForSelector("[data-testid=merge-send]");
        const panel = p.locator("[data-testid=customer-panel]");
        for (const sel of ["merge-send", "merge-with", "tag-add", "tag-input"]) {
          // The panel scrolls (below the conversation at tablet width).
          await p.locator(`[data-testid=${sel}]`).scrollIntoViewIfNeeded();
          check(await inside(p.locator(`[data-testid=${sel}]`), panel, { fully: true, horizontally: true }), `${lang} at ${width}px: ${sel} sticks out of the customer panel`);
        }
        const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        check(overflow <= 0, `${lang} at ${width}px: the page scrolls sideways by ${overflow}px`);
        if (width === 1280) {
          await shot(p, `11-conversation-${lang}`);
          await p.goto("/supervisor");
          await p.waitForSelector("[data-testid=board]");
          await shot(p, `12-board-${lang}`);
          await p.goto("/supervisor/reports");
          await p.waitForSelector("[data-testid=report-table]");
          await shot(p, `13-reports-${lang}`);
        }
        await p.context().close();
      }
    }
  });

  await step("what arrives while the live stream is down shows when it reconnects", async () => {
    // A fresh desk whose stream is cut (network errors, as on a flaky
    // link): EventSource keeps retrying. The message arrives meanwhile; the
    // change is sent to no one on this page. Once the stream opens again
    // the page must show it, without a reload.
    const p = await newPage({ name: "ivan-offline" });
    await login(p, "ivan");
    await p.route("**/desk/stream", (route) => route.abort("internetdisconnected"));
    // ivan is away by now: a new conversation waits in his teams' queue.
    await p.goto("/desk?tab=teams");
    await p.waitForSelector("[data-testid=inbox-list]");
    await p.evaluate(() => { window.__noReload = true; });
    await p.waitForSelector("body[data-live=off]");
    await customerSms(1, OFFLINE_CUSTOMER, "Are you open on Saturday?");
    // mgmt has it: the supervisor's board sees it.
    await sofia.goto("/desk?tab=all");
    await row(sofia, OFFLINE_CUSTOMER).waitFor();
    check((await row(p, OFFLINE_CUSTOMER).count()) === 0, "the desk with its stream down cannot know of the message yet");
    await p.unroute("**/desk/stream");
    await p.waitForSelector("body[data-live=on]", { timeout: 30000 });
    await row(p, OFFLINE_CUSTOMER).waitFor();
    check(await p.evaluate(() => window.__noReload === true), "the message was shown without a reload");
    await p.context().close();
  });

  await step("a message that arrives while the inbox refreshes is shown too", async () => {
    // The inbox's refresh for a first message is answered by the server at
    // once, but its answer reaches the page only after a second message
    // arrived and the page asked for another refresh (a slow link). That
    // answer lacks the second message; the page must fetch again.
    const p = await newPage({ name: "ivan-slow", routeFetch: true });
    await login(p, "ivan");
    // The refresh the stream's opening asks for is over before the test
    // holds the next one.
    const opened = p.waitForResponse((r) => r.url().includes("/desk/list"));
    await p.goto("/desk?tab=teams");
    await p.waitForSelector("body[data-live=on]");
    await opened;
    await p.evaluate(() => { window.__noReload = true; });
    let held;
    const inFlight = new Promise((r) => { held = r; });
    let release;
    const released = new Promise((r) => { release = r; });
    await p.route("**/desk/list**", async (route) => {
      const answer = await route.fetch();
      held();
      await released;
      await route.fulfill({ response: answer });
    }, { times: 1 });
    await customerSms(1, SLOW_FIRST, "First, while the inbox refreshes");
    await inFlight;
    const asked = Number(await p.getAttribute("body", "data-fired"));
    await customerSms(1, SLOW_SECOND, "Second, while the answer is on its way");
    await p.waitForFunction((n) => Number(document.body.getAttribute("data-fired")) > n, asked);
    release();
    await row(p, SLOW_FIRST).waitFor();
    await row(p, SLOW_SECOND).waitFor();
    check(await p.evaluate(() => window.__noReload === true), "shown without a reload");
    await p.context().close();
  });
});
