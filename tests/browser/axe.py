"""
Accessibility measured with axe-core (Deque's rules engine, the npm package pinned by
tests/browser/package-lock.json): audit a page as it stands and explain each violation.

The rules run are WCAG 2.1 levels A and AA, plus axe's `region` rule (content outside any
landmark, a best practice rather than a WCAG criterion): toasts appended to <body> are easy to
leave outside every landmark, where a screen reader's landmark navigation never finds them.

axe is given to each page as an init script (Browsers.open's `init_script`), not with
page.add_script_tag: that inserts an inline <script>, which the demo page's Content-Security-
Policy refuses, as it should; init scripts run through the DevTools protocol, under no CSP.

`make test` installs it (`npm ci` in tests/browser) when npm is there; without it the audits are
skipped, except in CI (.ci/run installs npm), where they must run.
"""

from pathlib import Path

from .. import ci

AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
EXTRA_RULES = ["region"]

RUN = """
async ({tags, extraRules, exclude}) => {
    const options = {
        runOnly: {type: "tag", values: tags},
        rules: Object.fromEntries(extraRules.map((rule) => [rule, {enabled: true}])),
        resultTypes: ["violations"],
    };
    const context = exclude.length ? {include: [document], exclude: exclude.map((selector) => [selector])} : document;
    const results = await axe.run(context, options);
    return results.violations.map((violation) => ({
        id: violation.id,
        impact: violation.impact,
        help: violation.help,
        nodes: violation.nodes.map((node) => ({target: node.target.join(" "), summary: node.failureSummary})),
    }));
}
"""


def source():
    """axe-core's script, for Browsers.open(init_script=...)."""
    if not AXE.exists():
        ci.unavailable(f"No axe-core at {AXE}", "npm", "The accessibility tests", install="npm ci --prefix tests/browser")
    return AXE.read_text()


def violations(page, exclude=()):
    """
    axe's violations on `page` now: [{id, impact, help, nodes: [{target, summary}]}]. `exclude`:
    CSS selectors of nodes left out of the audit (each with its reason where it is passed).
    """
    return page.evaluate(RUN, {"tags": WCAG_21_AA, "extraRules": EXTRA_RULES, "exclude": list(exclude)})


def report(found):
    """The violations as a readable list: rule, impact, what it asks, then each node and why it fails."""
    lines = []
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            lines.append(f"  {node['target']}")
            lines.extend(f"    {line}" for line in (node["summary"] or "").splitlines())
    return "\n".join(lines)
