"""Runs the Grafana dashboard's queries and the alert rules against a live
Prometheus over its HTTP API; the query side of tests/prometheus_test.sh.

  prometheus_queries.py value URL EXPR
      prints the sum of the instant vector (or the scalar) EXPR gives now,
      or "none" when it is empty.
  prometheus_queries.py wait URL EXPR WANT SECONDS
      waits at most SECONDS until EXPR's value is WANT (within 1e-9
      relative), printing the last value; exit 1 if it never is.
  prometheus_queries.py dashboard URL DASHBOARD START SCRAPE [NAME=VALUE...]
      runs every target of every panel the way Grafana would between START
      (unix seconds) and now, with the dashboard's variables set to VALUE
      (".*", the dashboard's "All", when not given): range queries for time
      series panels, instant queries for stat panels. Each must succeed and
      return at least one finite sample. The variables' label_values()
      queries must list the given values.
  prometheus_queries.py rules URL RULES_FILE
      every alert of RULES_FILE is loaded, has been evaluated without error,
      its expression runs through /api/v1/query, and none is pending or
      firing. Prints the alert names.

Standard library only; run it with Debian's /usr/bin/python3.
"""

import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def api(base, path, params=None):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def samples(data):
    """Every (labels, value) of a query result, range or instant."""
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [({}, float(result[1]))]
    if kind == "vector":
        return [(r["metric"], float(r["value"][1])) for r in result]
    if kind == "matrix":
        return [(r["metric"], float(v[1])) for r in result for v in r["values"]]
    raise RuntimeError(f"unexpected result type {kind}")


def value(base, expr):
    got = samples(api(base, "/api/v1/query", {"query": expr}))
    return None if not got else sum(v for _, v in got)


def close(a, b):
    return a is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def cmd_value(base, expr):
    v = value(base, expr)
    print("none" if v is None else repr(v))
    return 0


def cmd_wait(base, expr, want, seconds):
    want, deadline, v = float(want), time.time() + float(seconds), None
    while True:
        v = value(base, expr)
        if close(v, want) or time.time() > deadline:
            break
        time.sleep(0.5)
    print("none" if v is None else repr(v))
    return 0 if close(v, want) else 1


# Grafana's escaping of a variable value inside a regex matcher.
REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|\[\]{}])")


def grafana_escape(v):
    return REGEX_SPECIAL.sub(r"\\\\\1", v)


def substitute(expr, variables):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise RuntimeError(f"unknown variable ${name} in {expr}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def cmd_dashboard(base, path, start, scrape, assignments):
    dashboard = json.load(open(path))
    chosen = dict(a.split("=", 1) for a in assignments)
    now = time.time()
    start, scrape = float(start), float(scrape)
    range_s = max(1, int(math.ceil(now - start)))
    # As Grafana computes them for a panel about 1000 points wide, with the
    # datasource's scrape interval as the minimum interval.
    interval_s = max(int(math.ceil(range_s / 1000)), int(scrape))
    rate_s = max(interval_s + int(scrape), 4 * int(scrape))
    # Grafana aligns the range to the step; rounding the end up keeps the
    # newest scrape inside it (series that appeared a moment ago included).
    end = math.ceil(now / interval_s) * interval_s
    variables = {
        "__interval": f"{interval_s}s", "__interval_ms": str(interval_s * 1000),
        "__rate_interval": f"{rate_s}s", "__range": f"{range_s}s",
        "__range_s": str(range_s), "__range_ms": str(range_s * 1000),
    }
    failures = 0
    for var in dashboard["templating"]["list"]:
        name = var["name"]
        if var["type"] == "datasource":
            continue
        want = chosen.get(name)
        variables[name] = grafana_escape(want) if want else var.get("allValue", ".*")
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"].strip())
        if not m:
            print(f"FAIL variable {name}: not a label_values() query: {var['query']}")
            failures += 1
            continue
        series = substitute(m.group(1), variables)
        values = api(base, f"/api/v1/label/{m.group(2)}/values", {"match[]": series})
        if want and want not in values:
            print(f"FAIL variable {name}: {want} not among {values}")
            failures += 1
        else:
            print(f"ok   variable {name} = {variables[name]} (choices {values})")
    panels = []
    for p in dashboard["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))  # collapsed rows hold theirs
    queries = 0
    for p in panels:
        for t in p.get("targets", []):
            queries += 1
            expr = substitute(t["expr"], variables)
            what = f"{p['title']} [{t['refId']}]"
            try:
                if t.get("instant") and not t.get("range"):
                    data = api(base, "/api/v1/query", {"query": expr, "time": end})
                else:
                    data = api(base, "/api/v1/query_range",
                               {"query": expr, "start": start, "end": end, "step": interval_s})
                got = samples(data)
            except RuntimeError as e:
                print(f"FAIL {what}: {e}")
                failures += 1
                continue
            finite = [v for _, v in got if math.isfinite(v)]
            if not finite:
                print(f"FAIL {what}: no data ({len(got)} samples, none finite): {expr}")
                failures += 1
            else:
                print(f"ok   {what}: {len(data['result'])} series, last finite {finite[-1]:.6g}")
    if queries == 0:
        print("FAIL the dashboard has no queries")
        failures += 1
    print(f"{queries} panel queries, {failures} failure(s)")
    return 1 if failures else 0


def cmd_rules(base, rules_file):
    wanted = re.findall(r"^\s*- alert:\s*(\S+)", open(rules_file).read(), re.M)
    loaded = {}
    for group in api(base, "/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            if rule["type"] == "alerting":
                loaded[rule["name"]] = rule
    failures = 0
    for name in wanted:
        rule = loaded.get(name)
        if rule is None:
            print(f"FAIL alert {name}: not loaded")
            failures += 1
            continue
        problems = []
        if rule.get("health") != "ok":
            problems.append(f"health {rule.get('health')}: {rule.get('lastError')}")
        if rule.get("lastEvaluation", "").startswith("0001-"):
            problems.append("never evaluated")
        try:
            now = samples(api(base, "/api/v1/query", {"query": rule["query"]}))
        except RuntimeError as e:
            problems.append(str(e))
            now = []
        if now or rule.get("alerts"):
            problems.append(f"fires on a healthy swarm: {now or rule['alerts']}")
        if problems:
            print(f"FAIL alert {name}: " + "; ".join(problems))
            failures += 1
        else:
            print(f"ok   alert {name}: evaluated, quiet")
    if not wanted:
        print(f"FAIL no alerts in {rules_file}")
        failures += 1
    return 1 if failures else 0


def main(argv):
    commands = {"value": (cmd_value, 2), "wait": (cmd_wait, 4),
                "dashboard": (cmd_dashboard, None), "rules": (cmd_rules, 2)}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    fn, nargs = commands[argv[1]]
    args = argv[2:]
    if fn is cmd_dashboard:
        if len(args) < 4:
            print(__doc__, file=sys.stderr)
            return 2
        return fn(args[0], args[1], args[2], args[3], args[4:])
    if len(args) != nargs:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
