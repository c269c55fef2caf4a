// Clicks through the estate page in headless Chromium: people listed, the overlap report before an
// inheritance, decline (nothing written), accept (the heir appears in the lineage), the try-it box,
// the bets; saves a screenshot. Usage: node inheritance.mjs URL TOKEN SCREENSHOT.png
// Exit 77 (a skip for ctest) only when Chromium cannot start.
import { chromium } from "playwright-core";

const [url, token, shot] = process.argv.slice(2);
const parent = process.env.PARENT || "ann", successor = process.env.SUCCESSOR || "ben";  // who inherits from whom
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
let browser;
try {
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
} catch (e) {
  console.log(`SKIP: Chromium (${executablePath}) cannot start: ${e.message.split("\n")[0]}`);
  process.exit(77);
}
const errors = [];
const check = (ok, what) => {
  if (!ok) throw new Error("page check failed: " + what);
  console.log("ok  " + what);
};
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(`${url}#token=${token}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  const people = await page.locator("#people .card h3").allTextContents();
  check(people.includes(parent) && people.includes(successor), `people listed: ${people.join(", ")}`);

  // The parent's adapter, and the successor (whose own adapter is then the child).
  const parentValue = await page.locator("#parent option", { hasText: parent }).first().getAttribute("value");
  await page.selectOption("#parent", parentValue);
  await page.selectOption("#successor", successor);
  check((await page.locator("#child option").count()) === 1, "the successor's own adapter offered as the child");
  await page.click("#show-overlap");
  await page.waitForSelector("#regime", { timeout: 30000 });
  const regime = await page.textContent("#regime");
  check(["orthogonal", "partial", "aligned"].includes(regime), `overlap report shows the regime (${regime})`);
  const report = await page.textContent("#report");
  check(report.includes("Recommended") && report.includes("Memory"), "the report says what is recommended and what it costs");
  check((await page.locator("#report table.keep tr").count()) > 3, "predicted retention per scheme");

  await page.click("#decline");
  check((await page.textContent("#inherit-result")).includes("nothing was written"), "decline writes nothing");
  check((await page.locator("#lineage svg path").count()) === 0, "no lineage before accepting");

  await page.click("#show-overlap");
  await page.waitForSelector("#decision:not([hidden])");
  await page.click("#accept");
  await page.waitForFunction(() => /Accepted|Not inherited/.test(document.querySelector("#inherit-result").textContent), null, { timeout: 30000 });
  const result = await page.textContent("#inherit-result");
  check(result.startsWith("Accepted"), `inheritance accepted: ${result}`);
  await page.waitForFunction(() => document.querySelectorAll("#lineage svg path").length >= 2);
  check((await page.locator("#lineage svg rect").count()) >= 3, "the heir appears in the lineage tree");

  await page.selectOption("#try-model", successor);
  const prompt = process.env.PROMPT || "Dear";
  await page.fill("#try-prompt", prompt);
  await page.click("#try-go");
  await page.waitForFunction((n) => !document.querySelector("#try-go").disabled && document.querySelector("#try-out").textContent.length > n,
                             prompt.length, { timeout: 30000 });
  const out = await page.textContent("#try-out");
  check(!out.includes("[error"), `the try-it box completes with ${successor}'s specialist: ${JSON.stringify(out.slice(0, 60))}`);

  await page.screenshot({ path: shot, fullPage: true });
  check(errors.length === 0, "no script errors on the page" + (errors.length ? ": " + errors.join("; ") : ""));
  console.log(`screenshot: ${shot}`);
} catch (e) {
  console.error(String(e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
