/**
 * The web console's page and style sheet, served by console.ts. Plain HTML: one <main> the
 * script modules (src/console/) fill per view, a navigation of ordinary links (#series, #top,
 * …), a token dialog. No framework, nothing from another origin: the Content-Security-Policy
 * allows this listener only.
 */
export const CONSOLE_CSP: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>auditgate console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="console/console.css">
<script type="module" src="console/main.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
  <h1>auditgate</h1>
  <nav aria-label="Views">
    <ul>
      <li><a href="#series">Series</a></li>
      <li><a href="#top">Top talkers</a></li>
      <li><a href="#client">Client</a></li>
      <li><a href="#sessions">Sessions</a></li>
      <li><a href="#decisions">Decisions</a></li>
      <li><a href="#bans">Bans</a></li>
      <li><a href="#rates">Firing rates</a></li>
      <li><a href="#store">Store</a></li>
    </ul>
  </nav>
  <p id="status" role="status" aria-live="polite"></p>
</header>
<main id="main" tabindex="-1"><p>Loading…</p></main>
<dialog id="token-dialog" aria-labelledby="token-title">
  <form id="token-form" method="dialog">
    <h2 id="token-title">Admin token</h2>
    <p>This gateway's admin API needs its token (admin.token). It is kept for this tab only.</p>
    <p id="token-error" role="alert"></p>
    <label for="token-input">Token</label>
    <input id="token-input" name="token" type="password" autocomplete="off" required>
    <button type="submit">Use token</button>
  </form>
</dialog>
<noscript><p>The console needs JavaScript; the JSON API works without it.</p></noscript>
</body>
</html>
`;

export const CONSOLE_CSS = `:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #57606a; --line: #d0d7de; --bar: #2f6fb3; --bad: #b3261e; --ok: #1a7f37; --focus: #bf4b00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #30363d; --bar: #58a6ff; --bad: #ff7b72; --ok: #3fb950; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .5rem 1rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.2rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 1rem 0 .5rem; }
nav ul { display: flex; flex-wrap: wrap; gap: .25rem .75rem; list-style: none; margin: 0; padding: 0; }
nav a { color: inherit; padding: .25rem .1rem; }
nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
main { padding: 0 1rem 2rem; max-width: 100%; }
main:focus { outline: none; }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: var(--bg); padding: .25rem .5rem; }
#status { margin: 0; color: var(--muted); font-size: .9rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .6rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; }
.bar { display: inline-block; height: .8rem; background: var(--bar); vertical-align: middle; margin-right: .35rem; }
.spark { display: inline-flex; align-items: flex-end; gap: 1px; height: 1.5rem; }
.spark span { display: inline-block; width: 3px; background: var(--bar); }
form.inline { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: .5rem 0; }
form.inline label { display: flex; flex-direction: column; font-size: .9rem; }
input, select, button { font: inherit; padding: .3rem .5rem; }
button { cursor: pointer; }
.error { color: var(--bad); }
.ok { color: var(--ok); }
.muted { color: var(--muted); }
.fallback { color: var(--bad); font-weight: 700; }
dialog { max-width: 26rem; border: 1px solid var(--line); }
dialog label, dialog input { display: block; width: 100%; margin: .25rem 0; }
ol.live { list-style: none; padding: 0; margin: 0; }
ol.live li { border-bottom: 1px solid var(--line); padding: .3rem 0; overflow-wrap: anywhere; }
@media (max-width: 600px) { body { font-size: 14px; } th, td { padding: .25rem .35rem; } main { padding: 0 .5rem 1.5rem; } }
`;
