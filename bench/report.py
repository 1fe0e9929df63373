"""The one table of bench/run.py, in Markdown, with the issue's targets and PASS/FAIL."""

import math


def num(value, digits=0):
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "—"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if not a or not b:
        return None
    return a / b


def times(value):
    if value is None:
        return "—"
    return f"1/{1 / value:,.0f}" if value < 0.1 else f"{value:.2f}×"


def verdict(ok):
    return "—" if ok is None else ("PASS" if ok else "**FAIL**")


def delivered_note(row):
    lost = row["expected"] - row["deliveries"]
    notes = []
    if lost:
        notes.append(f"{lost:,} of {row['expected']:,} not delivered")
    if row["duplicates"]:
        notes.append(f"{row['duplicates']:,} duplicates")
    return f" ({'; '.join(notes)})" if notes else ""


def render(facts, params, results, extra, workers_available):
    lines = []
    add = lines.append
    add(f"# Relay benchmark, {facts['started']}{' (--quick)' if params.quick else ''}")
    add("")
    add(f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory']}, Linux {facts['kernel']}, "
        f"Python {facts['python']}; load average {facts['load']:.2f} at the start, {facts['load_end']:.2f} at the end. "
        f"Run time {facts['duration'] / 60:.1f} min.")
    ours_v = ", ".join(f"{k} {v}" for k, v in facts["versions_ours"].items())
    peers_v = ", ".join(f"{k} {v}" for k, v in facts["versions_peers"].items())
    add(f"Versions: ours and bare: {ours_v}. Channels peer and load client: {peers_v}.")
    add("")
    channels_keys = [key for key in results if key.startswith("channels")]
    best_channels = max(channels_keys, key=lambda k: results[k]["throughput_1000"]["rate"], default=None)
    columns = [key for key in ("ours", "ours-2w", "bare") if key in results] + channels_keys
    ours, bare = results.get("ours"), results.get("bare")
    channels = results.get(best_channels) if best_channels else None
    header = ["metric"] + [results[key]["label"] for key in columns] + ["ours / bare", "ours / Channels", "target", "result"]
    add("| " + " | ".join(header) + " |")
    add("|" + "---|" * len(header))

    def row(label, cells, r_bare=None, r_channels=None, target="", ok=None):
        add("| " + " | ".join([label] + cells + [times(r_bare), times(r_channels), target, verdict(ok)]) + " |")

    for n in (100, 1000):
        key = f"throughput_{n}"
        cells = [num(results[c][key]["rate"]) + "/s" + delivered_note(results[c][key]) for c in columns]
        r_bare = ratio(ours and ours[key]["rate"], bare and bare[key]["rate"])
        r_channels = ratio(ours and ours[key]["rate"], channels and channels[key]["rate"])
        if n == 1000:
            ok = None if r_bare is None else (r_bare >= 1.1 and (r_channels is None or r_channels >= 10))
            row(f"deliveries/s, {n:,} clients", cells, r_bare, r_channels, "≥ 1.1× bare and ≥ 10× Channels (when run)", ok)
        else:
            row(f"deliveries/s, {n:,} clients", cells, r_bare, r_channels)
    for stat in ("p50", "p99"):
        cells = [num(results[c]["latency"][stat], 1) + " ms" + delivered_note(results[c]["latency"]) for c in columns]
        r_bare = ratio(ours and ours["latency"][stat], bare and bare["latency"][stat])
        r_channels = ratio(ours and ours["latency"][stat], channels and channels["latency"][stat])
        if stat == "p99":
            row("p99 latency, 1,000 clients × 10 events/s", cells, r_bare, r_channels, "≤ 1.5× bare", None if r_bare is None else r_bare <= 1.5)
        else:
            row("p50 latency, 1,000 clients × 10 events/s", cells, r_bare, r_channels)
    cells = [f"{num(results[c]['rss'])} MiB" + (f" ({results[c]['processes']} processes)" if results[c]["processes"] > 1 else "") for c in columns]
    row("relay RSS at 1,000 clients", cells, ratio(ours and ours["rss"], bare and bare["rss"]), ratio(ours and ours["rss"], channels and channels["rss"]))
    if ours and "e2e" in ours:
        e2e = ours["e2e"]
        cells = [f"p50 {num(e2e['p50'], 1)} ms, p99 {num(e2e['p99'], 1)} ms" + delivered_note(e2e)] + ["—"] * (len(columns) - 1)
        row("notify() in Django → client, 1,000 clients × 10 events/s", cells)
    add("")
    add("Ratios compare ours with 1 worker (one process, like the bare relay and daphne). "
        f"Channels ratios use the faster channel layer at 1,000 clients ({results[best_channels]['label'] if best_channels else '—'}).")
    add("")

    if "ours-2w" in results and ours:
        one, two = ours["throughput_1000"], results["ours-2w"]["throughput_1000"]
        clean = all(r["deliveries"] == r["expected"] and not r["duplicates"] for r in (results["ours-2w"]["throughput_100"], two, results["ours-2w"]["latency"]))
        add("## Scale out: `runwsserver --workers 2`")
        add("")
        add("| | 1 worker | 2 workers | 2 / 1 | every event to every client once |")
        add("|---|---|---|---|---|")
        add(f"| deliveries/s, 1,000 clients | {num(one['rate'])}/s | {num(two['rate'])}/s | {times(ratio(two['rate'], one['rate']))} | "
            f"{'yes: none lost, no duplicates' if clean else '**no**'} |")
        add(f"| deliveries/s, 100 clients | {num(ours['throughput_100']['rate'])}/s | {num(results['ours-2w']['throughput_100']['rate'])}/s | "
            f"{times(ratio(results['ours-2w']['throughput_100']['rate'], ours['throughput_100']['rate']))} | |")
        add(f"| authenticated connections accepted/s (900 clients, 100 handshakes in flight) | {num(ours['connect_1000'])}/s | "
            f"{num(results['ours-2w']['connect_1000'])}/s | {times(ratio(results['ours-2w']['connect_1000'], ours['connect_1000']))} | |")
        per_cpu = [r["throughput_1000"]["rate"] / max(r["throughput_1000"]["relay_cpu"], 1e-9) for r in (ours, results["ours-2w"])]
        add(f"| deliveries per relay CPU-second, 1,000 clients | {num(per_cpu[0])} | {num(per_cpu[1])} | {times(ratio(per_cpu[1], per_cpu[0]))} | |")
        add("")
        add(f"Relay CPU at 1,000 clients: {one['relay_cpu']:.0%} of a core with 1 worker, {two['relay_cpu']:.0%} over 2 workers; "
            f"load clients {' + '.join(f'{c:.0%}' for c in two['client_cpu'])}. This machine has 2 cores and the load client needs "
            "about one of them at these delivery rates, so a second worker finds no idle core: deliveries cannot double here, "
            "and four busy processes on two cores cost more per delivery. Accepting connections, where the load client is "
            "nearly idle, shows what the second core gives.")
        add("")
    elif not workers_available:
        add("`runwsserver --workers` is not available in this version: no 2-worker row.")
        add("")

    compression = extra.get("compression")
    if compression:
        off, on = compression
        add(f"## permessage-deflate (`WSSERVER_COMPRESSION`), {off['clients']:,} clients offering it, ≈400-byte events of varied text")
        add("")
        add("| | off (default) | on | on / off |")
        add("|---|---|---|---|")
        add(f"| connections that negotiated it | {off['compressed']:,} | {on['compressed']:,} | |")
        add(f"| bytes on the wire per delivery (frames, headers included) | {num(off['bytes_per_delivery'])} | "
            f"{num(on['bytes_per_delivery'])} | {times(ratio(on['bytes_per_delivery'], off['bytes_per_delivery']))} |")
        add(f"| deliveries/s, bursts of 100 events | {num(off['rate'])}/s | {num(on['rate'])}/s | {times(ratio(on['rate'], off['rate']))} |")
        add(f"| relay CPU per delivery | {off['relay_us_per_delivery']:.2f} µs | {on['relay_us_per_delivery']:.2f} µs | "
            f"{times(ratio(on['relay_us_per_delivery'], off['relay_us_per_delivery']))} |")
        add(f"| relay RSS per socket, idle after `welcome` | {num(off['kib_per_socket_idle'], 1)} KiB | {num(on['kib_per_socket_idle'], 1)} KiB | "
            f"{times(ratio(on['kib_per_socket_idle'], off['kib_per_socket_idle']))} |")
        add(f"| relay RSS per socket, after the bursts | {num(off['kib_per_socket_after'], 1)} KiB | {num(on['kib_per_socket_after'], 1)} KiB | "
            f"{times(ratio(on['kib_per_socket_after'], off['kib_per_socket_after']))} |")
        add("")
        add(f"Runs: off {', '.join(num(r) for r in off['runs'])}/s; on {', '.join(num(r) for r in on['runs'])}/s. Not delivered: "
            f"{off['lost'] + on['lost']}. Other processes on the machine: {off['foreign_cpu']:.0%} and {on['foreign_cpu']:.0%} of a core.")
        add("")

    connections = extra.get("connections")
    if connections:
        add(connections_section(connections))

    notify = extra.get("notify")
    if notify:
        add("## notify() inside a request")
        add("")
        add("| call in the view | request, median | added to the request | queries added | target | result |")
        add("|---|---|---|---|---|---|")
        constant = {}
        for entry in notify:
            constant.setdefault(entry["mode"].split("-")[0], set()).add(entry["queries"])
        for entry in notify:
            if entry["mode"] == "none":
                add(f"| {entry['label']} | {entry['median_ms']:.2f} ms | — | — | | |")
                continue
            kind = entry["mode"].split("-")[0]
            ok = entry["added_ms"] <= 2 and len(constant[kind]) == 1
            add(f"| {entry['label']} | {entry['median_ms']:.2f} ms | {entry['added_ms']:+.2f} ms | {entry['queries']} | "
                f"≤ 2 ms, constant queries | {verdict(ok)} |")
        add("")
        add("Each call stores the event, commits and publishes to Redis (the same Lua script, on a stream no relay reads). "
            "Medians of runs alternating with the baseline request.")
        add("")

    check = extra.get("loadclient")
    if check:
        add("## Load client check (bare relay, 100 clients, one load client process)")
        add("")
        add("| backend | deliveries/s | load client CPU | per frame | relay CPU |")
        add("|---|---|---|---|---|")
        for entry in check:
            add(f"| {entry['backend']} | {num(entry['rate'])}/s | {entry['client_cpu']:.0%} of a core | {entry['us_per_frame']:.1f} µs | "
                f"{entry['relay_cpu']:.0%} of a core |")
        add("")

    add("## Measurement notes")
    add("")
    for key in columns:
        result = results[key]
        parts = []
        for n in (100, 1000):
            t = result[f"throughput_{n}"]
            parts.append(
                f"{n:,} clients: bursts of {t['events']} events, runs {', '.join(num(r) for r in t['runs'])}/s, relay CPU "
                f"{t['relay_cpu']:.0%} of a core, load clients {' + '.join(f'{c:.0%}' for c in t['client_cpu'])}, other processes {t['foreign_cpu']:.0%}, "
                f"hypervisor steal {t['steal']:.0%}"
            )
        add(f"- {result['label']}: " + "; ".join(parts) + ".")
    add("")
    add("CPU figures are shares of one core over each measurement. Deliveries/s: N clients × K events published at once, "
        "divided by the time from the first publish to the last frame received; the median of the runs. Latency: receive "
        "time minus the send timestamp in the payload, for every delivery.")
    return "\n".join(lines) + "\n"


def connections_section(result, facts=None):
    """bench/connections.py's results: its own table (and, run alone, the machine it ran on)."""
    lines = []
    add = lines.append
    processes = f"{result['workers']} relay processes (`runwsserver --workers {result['workers']}`)" if result["workers"] > 1 else "one relay process"
    add(f"## {result['connections']:,} idle authenticated connections on {processes}")
    add("")
    if facts:
        add(f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory']}, Linux {facts['kernel']}, Python {facts['python']}; "
            f"load average {facts['load']:.2f} at the start.")
        add("")
    add("| metric | measured | target | result |")
    add("|---|---|---|---|")
    complete = result["connected"] == result["connections"]
    add(f"| connections accepted per second (session lookup included; {result['concurrency']} handshakes in flight) | "
        f"{num(result['accept_rate'])}/s ({result['connected']:,} in {result['connect_seconds']:.1f} s; "
        f"handshake to `welcome` p50 {num(result['handshake_p50'])} ms, p99 {num(result['handshake_p99'])} ms) | ≥ 500/s | "
        f"{verdict(result['accept_rate'] >= 500 and complete)} |")
    add(f"| relay RSS, all its processes | {num(result['rss_start'])} MiB idle, {num(result['rss'])} MiB with every socket connected | | |")
    add(f"| marginal RSS per idle authenticated socket | {result['kib_per_socket']:.2f} KiB | ≤ 12 KiB | "
        f"{verdict(result['kib_per_socket'] <= 12)} |")
    for name, label in (("notify", "notify() of a group of every user"), ("announce", "announce() to all")):
        runs = result[name]
        if not runs:
            continue
        # Judged on the sockets timed exactly: an upper bound comes from a later frame's segment,
        # which reached the sockets read last, the ones written first (bench/loadclient.py).
        worst = max(row["exact_last"] for row in runs)
        spans = "; ".join(
            f"p50 {row['p50']:.2f} s, p99 {row['p99']:.2f} s, max {row['last']:.2f} s"
            + (f" ({row['bounded']:,} upper bounds; the others' max {row['exact_last']:.2f} s)" if row["bounded"] else "")
            for row in runs
        )
        add(f"| {label}: commit → its arrival in each socket | {spans} | max ≤ 2 s (sockets timed exactly) | {verdict(worst <= 2)} |")
        reads = "; ".join(f"p50 {row['read_p50']:.2f} s, max {row['read_last']:.2f} s" for row in runs)
        add(f"| {label}: commit → the load clients' read (at nice {result['client_niceness']}) | {reads} | | |")
    twice = sum(row["duplicates"] for row in result["notify"] + result["announce"])
    add(f"| events a socket received twice | {twice:,} | 0 | {verdict(twice == 0)} |")
    refused = sum(result["errors"].values())
    closed = sum(result["closed"].values())
    refusals = f" ({result['errors']})" if refused else ""
    closes = f" ({result['closed']})" if closed else ""
    add(f"| handshakes refused or failed | {refused:,}{refusals} | 0 | {verdict(refused == 0)} |")
    add(f"| connections closed by the relay; not open at the end | {closed:,}{closes}; "
        f"{result['connected'] - result['open_at_end']:,} | 0 | {verdict(closed == 0 and result['open_at_end'] == result['connected'])} |")
    problems = result.get("relay_problems", [])
    add(f"| warnings and errors in the relay's log | {len(problems):,}{' (' + '; '.join(problems[:3]) + ')' if problems else ''} | 0 | "
        f"{verdict(not problems)} |")
    add("")
    calls = ", ".join(f"{row['call_ms']:.0f}" for row in result["notify"] + result["announce"])
    add(f"During the handshakes: relay CPU {result['relay_cpu_connect']:.0%} of a core, load clients "
        f"{result['client_cpu_connect']:.0%} ({result['client_workers']} processes), other processes on the machine "
        f"{result['foreign_cpu_connect']:.0%}; listen queues overflowed {result['listen_overflows']:,} times on the machine "
        f"(SYNs dropped and resent). The calls took {calls} ms before their commit (notify(), then announce()).")
    add("")
    return "\n".join(lines)
