"""Sanity checks for the demo data sets written by generate.py.

Run ``python3 tools/demo_data/check.py``. It re-derives the answers of the computed
tasks independently of the generator (by parsing the rows; for math_demo, from each question
or from each step of its working) and checks counts, label balance, duplicates, JSON
validity, placeholders and the registry. Exits non-zero on failure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "tunekit" / "data" / "demo"  # where the data sets live
errors: list[str] = []
checked = {"computed": 0}


def fail(msg: str) -> None:
    errors.append(msg)


def nums(s: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", s)]


def check_calc(text: str, where: str) -> None:
    """Check every 'a OP b = c' expression found in text."""
    for a, op, b, c in re.findall(r"(\d+) ([-+x/]) (\d+) = (\d+)", text):
        a, b, c = int(a), int(b), int(c)
        want = {"+": a + b, "-": a - b, "x": a * b, "/": a / b}[op]
        checked["computed"] += 1
        if want != c:
            fail(f"{where}: {a} {op} {b} = {c} is wrong")


FACTORS = {("kilometres", "miles"): 0.621371, ("miles", "kilometres"): 1.609344,
           ("kilograms", "pounds"): 2.20462, ("hours", "minutes"): 60, ("minutes", "seconds"): 60,
           ("days", "hours"): 24, ("metres", "centimetres"): 100, ("litres", "millilitres"): 1000,
           ("feet", "inches"): 12, ("weeks", "days"): 7}


def check_units(text: str, where: str) -> None:
    for a, b, c in re.findall(r"2 x \((\d+) \+ (\d+)\) = (\d+)", text):
        checked["computed"] += 1
        if 2 * (int(a) + int(b)) != int(c):
            fail(f"{where}: perimeter")
    for x, src, y, dst in re.findall(r"(\d+) (\w+) is (?:about )?([\d.]+) (\w+)", text):
        if (src, dst) in FACTORS:
            checked["computed"] += 1
            if abs(int(x) * FACTORS[(src, dst)] - float(y)) > 0.006:
                fail(f"{where}: {x} {src} -> {y} {dst}")


def check_good(prompt: str, answer: str, where: str, inp: str = "") -> None:
    """Check a (supposedly correct) answer against its prompt where we can."""
    from generate import ANIMAL_CLASS, CAPITALS  # facts are data; reused on purpose
    check_calc(answer, where)
    check_units(answer, where)
    low = prompt.lower()
    m = re.search(r"capital (?:city )?of ([A-Z][\w ]+?)[?.,]", prompt) or \
        re.search(r"capital of (the United Kingdom)", prompt)
    if m and "capital" in answer:
        country = m.group(1)
        if CAPITALS.get(country) not in answer:
            fail(f"{where}: capital of {country}: {answer}")
        checked["computed"] += 1
    if "smallest to largest" in low or "ascending" in low or "increasing" in low or "low to high" in low:
        src = nums(inp) if inp else nums(prompt.split(":", 1)[-1])
        if src and "largest" not in answer:
            got = nums(answer)
            if got != sorted(src):
                fail(f"{where}: sort {src} -> {got}")
            checked["computed"] += 1
    if "descending" in low or "largest to smallest" in low:
        if nums(answer) != sorted(nums(inp), reverse=True):
            fail(f"{where}: sort desc")
        checked["computed"] += 1
    if "words are in" in low or "count the words" in low or "number of words" in low:
        sent = inp or re.search(r'"(.+)"', prompt).group(1)
        if nums(answer)[0] != len(sent.split()):
            fail(f"{where}: word count of {sent!r}: {answer}")
        checked["computed"] += 1
    if "vowels" in low:
        if nums(answer)[0] != sum(c in "aeiou" for c in inp.lower()):
            fail(f"{where}: vowels")
        checked["computed"] += 1
    if "largest number" in answer and ("largest" in low or "biggest" in low) and "sort" not in low:
        src = nums(inp or prompt)
        if nums(answer)[-1] != max(src):
            fail(f"{where}: largest")
        checked["computed"] += 1
    if "smallest number is" in answer:
        if nums(answer)[-1] != min(nums(inp)):
            fail(f"{where}: smallest")
        checked["computed"] += 1
    if "sum of these" in low and nums(answer)[0] != sum(nums(inp)):
        fail(f"{where}: sum")
    if "backwards" in low or "reverse the order" in low:
        if answer != inp[::-1]:
            fail(f"{where}: reverse")
        checked["computed"] += 1
    if ("uppercase" in low or "capital letters" in low) and not answer.startswith((inp or prompt.split(": ", 1)[1]).upper()):
        fail(f"{where}: upper")
    m = re.search(r"Is (\d+) (?:an even number|odd or even|even or odd)", prompt)
    if m:
        n = int(m.group(1))
        parity = "even" if n % 2 == 0 else "odd"
        if f"is {parity}" not in answer:
            fail(f"{where}: parity {n}: {answer}")
        checked["computed"] += 1
    m = re.search(r"[Ii]s an? (\w+) a mammal", prompt) or (re.search(r"(\w+)", inp) if "Classify" in prompt else None)
    if m and m.group(1) in ANIMAL_CLASS:
        if not re.search(rf"is an? {ANIMAL_CLASS[m.group(1)]}\.", answer):
            fail(f"{where}: animal {m.group(1)}: {answer}")
        checked["computed"] += 1
    m = re.search(r"(-?\d+) degrees (Celsius|Fahrenheit)", prompt)
    if m:
        x = int(m.group(1))
        want = x * 9 / 5 + 32 if m.group(2) == "Celsius" else (x - 32) * 5 / 9
        got = float(re.findall(r"(-?[\d.]+) degrees", answer)[-1])
        if abs(got - want) > 0.01:
            fail(f"{where}: temperature {prompt} -> {answer}")
        checked["computed"] += 1


def check_math(rows: list) -> tuple[int, int]:
    """math_demo: GSM8K-shaped rows; re-derive every answer from the question or its working."""
    system = ("Solve the problem. Show your working briefly, then give the final answer on a last "
              "line of its own, written as: #### <number>\nExample:\nWhat is 2 + 3?\n2 + 3 = 5\n#### 5")
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": lambda a, b: a // b if b and a % b == 0 else None}
    n_arith = n_word = 0
    if len(rows) != 360:
        fail(f"math: {len(rows)} rows, want 360")
    questions = [r.get("question") for r in rows]
    if len(set(questions)) != len(questions):
        fail("math: duplicate questions")
    for i, r in enumerate(rows):
        where = f"math {i}"
        if set(r) != {"system", "question", "answer"}:
            fail(f"{where}: keys {sorted(r)}")
            continue
        if r["system"] != system:
            fail(f"{where}: system text differs")
        lines = r["answer"].split("\n")
        if len(lines) < 2 or not re.fullmatch(r"#### \d+", lines[-1]):
            fail(f"{where}: last line {lines[-1]!r} is not '#### N'")
            continue
        final = int(lines[-1][5:])
        if final >= 1000:
            fail(f"{where}: answer {final} is not below 1000")
        working = "\n".join(lines[:-1])
        m = re.fullmatch(r"What is (\d+) ([-+*/]) (\d+)\?", r["question"])
        if m:  # plain arithmetic: recompute from the question alone
            n_arith += 1
            a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
            want = ops[op](a, b)
            small = a <= 99 and b <= 99 if op in "+-" else (a <= 12 and b <= 12 if op == "*" else b <= 12 and want is not None and want <= 12)
            if want is None or want < 0 or not small:
                fail(f"{where}: {r['question']} is not a small exact non-negative sum")
            elif final != want or working != f"{a} {op} {b} = {want}":
                fail(f"{where}: {r['question']} -> {r['answer']!r}, want {want}")
            checked["computed"] += 1
            continue
        n_word += 1  # word problem: check each step, and that the last one gives the final answer
        exprs = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", working)
        if not 1 <= len(exprs) <= 2:
            fail(f"{where}: {len(exprs)} computed steps in {working!r}")
            continue
        known = set(nums(r["question"]))
        for a, op, b, c in exprs:
            a, b, c = int(a), int(b), int(c)
            if ops[op](a, b) != c:
                fail(f"{where}: {a} {op} {b} = {c} is wrong")
            if a not in known or b not in known:
                fail(f"{where}: {a} {op} {b} uses a number that is not in the question or an earlier step")
            known.add(c)
            checked["computed"] += 1
        if final != int(exprs[-1][3]):
            fail(f"{where}: final {final} is not the last step's result {exprs[-1][3]}")
    if abs(n_arith - n_word) > 40:
        fail(f"math: {n_arith} arithmetic vs {n_word} word problems, want about half each")
    return n_arith, n_word


def check_math_tables(rows: list) -> None:
    """math_tables_demo: every a * b and (a * b) / b for a, b in 2..12, once each, worked and answered right."""
    want = {f"What is {a} * {b}?" for a in range(2, 13) for b in range(2, 13)}
    want |= {f"What is {a * b} / {b}?" for a in range(2, 13) for b in range(2, 13)}
    questions = [r.get("question") for r in rows]
    if len(questions) != len(set(questions)) or set(questions) != want:
        fail(f"math_tables: {len(rows)} rows are not the {len(want)} times-table questions, once each")
    for i, r in enumerate(rows):
        m = re.fullmatch(r"What is (\d+) ([*/]) (\d+)\?", r.get("question", ""))
        if not m:
            continue
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        c = a * b if op == "*" else a // b
        if r.get("answer") != f"{a} {op} {b} = {c}\n#### {c}":
            fail(f"math_tables {i}: {r['question']} -> {r.get('answer')!r}, want {c}")
        checked["computed"] += 1


def load_json(name: str):
    try:
        return json.loads((HERE / name).read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001
        fail(f"{name}: invalid JSON: {e}")
        return []


def main() -> int:
    sizes = {p.name: p.stat().st_size for p in HERE.iterdir() if p.suffix in (".json", ".jsonl")}
    for n, s in sizes.items():
        if s > 1_000_000:
            fail(f"{n} is {s} bytes")

    # c4
    docs = []
    for i, line in enumerate((HERE / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()):
        try:
            d = json.loads(line)
        except Exception as e:  # noqa: BLE001
            fail(f"c4 line {i}: {e}")
            continue
        if set(d) != {"text"}:
            fail(f"c4 line {i}: keys {set(d)}")
        docs.append(d["text"])
        if not 40 <= len(d["text"].split()) <= 200:
            fail(f"c4 line {i}: {len(d['text'].split())} words")
        if "{" in d["text"]:
            fail(f"c4 line {i}: unfilled template")
    if len(docs) < 320 or len(set(docs)) != len(docs):
        fail(f"c4: {len(docs)} docs, {len(set(docs))} unique")

    # alpaca
    alpaca = load_json("alpaca_en_demo.json")
    keys = [(r["instruction"], r["input"]) for r in alpaca]
    if len(alpaca) < 320 or len(set(keys)) != len(keys):
        fail("alpaca: too few rows or duplicates")
    if sum(1 for r in alpaca if r["input"]) < 100:
        fail("alpaca: fewer than 100 rows with input")
    for i, r in enumerate(alpaca):
        if set(r) != {"instruction", "input", "output"} or not r["output"]:
            fail(f"alpaca {i}: bad row")
        check_good(r["instruction"], r["output"], f"alpaca {i}", r["input"])

    # identity
    ident = load_json("identity.json")
    if len(ident) < 80 or len({r["instruction"] for r in ident}) != len(ident):
        fail("identity: too few rows or duplicates")
    if not any(r["instruction"] == "Who are you?" for r in ident):
        fail("identity: no 'Who are you?' row")
    for i, r in enumerate(ident):
        if "{{name}}" not in r["output"] or r["input"] != "" or len(r["output"].split()) >= 40:
            fail(f"identity {i}: {r}")
    with_author = sum("{{author}}" in r["output"] for r in ident)
    if with_author * 2 <= len(ident):
        fail("identity: fewer than half mention {{author}}")

    # dpo
    dpo = load_json("dpo_en_demo.json")
    seen = set()
    multi = 0
    for i, r in enumerate(dpo):
        conv = r["conversations"]
        roles = [m["from"] for m in conv]
        if roles not in (["human"], ["human", "gpt", "human"]):
            fail(f"dpo {i}: roles {roles}")
        multi += len(conv) == 3
        if r["chosen"]["from"] != "gpt" or r["rejected"]["from"] != "gpt" or r["chosen"]["value"] == r["rejected"]["value"]:
            fail(f"dpo {i}: chosen/rejected")
        key = json.dumps(conv)
        if key in seen:
            fail(f"dpo {i}: duplicate prompt")
        seen.add(key)
        if len(conv) == 3:
            check_calc(conv[1]["value"], f"dpo {i} turn 1")
        chosen = r["chosen"]["value"]
        if len(conv) == 1:
            check_good(conv[0]["value"], chosen, f"dpo {i}")
        else:
            last = conv[-1]["value"]
            check_calc(chosen, f"dpo {i}")
            if "capital" in last:
                check_good(last, chosen, f"dpo {i}")
            elif "largest" in last or "biggest" in last:
                if nums(chosen)[-1] != max(nums(conv[0]["value"])):
                    fail(f"dpo {i}: follow-up largest")
                checked["computed"] += 1
            elif "seconds" in last:
                a, b = nums(chosen)[:2]
                if a * 60 != b:
                    fail(f"dpo {i}: follow-up seconds")
                checked["computed"] += 1
    if len(dpo) < 320 or multi < 20:
        fail(f"dpo: {len(dpo)} rows, {multi} multi-turn")

    # kto
    kto = load_json("kto_en_demo.json")
    labels = [r["label"] for r in kto]
    if len(kto) < 320 or labels.count(True) != labels.count(False) or not all(isinstance(x, bool) for x in labels):
        fail("kto: size or balance")
    if labels[: len(labels) // 2].count(True) in (0, len(labels) // 2):
        fail("kto: labels not shuffled")
    prompts = [r["messages"][0]["content"] for r in kto]
    if len(set(prompts)) != len(prompts):
        fail("kto: duplicate prompts")
    for i, r in enumerate(kto):
        if [m["role"] for m in r["messages"]] != ["user", "assistant"]:
            fail(f"kto {i}: roles")
        if r["label"]:
            check_good(r["messages"][0]["content"], r["messages"][1]["content"], f"kto {i}")

    # math (grpo)
    math = load_json("math_demo.json")
    n_arith, n_word = check_math(math)
    check_math_tables(load_json("math_tables_demo.json"))

    # registry
    info = load_json("dataset_info.json")
    want = {"file_name": "math_demo.json", "columns": {"prompt": "question", "response": "answer", "system": "system"}}
    if info.get("math_demo") != want:
        fail(f"dataset_info: math_demo entry is {info.get('math_demo')!r}")
    for name, spec in info.items():
        if not (HERE / spec["file_name"]).exists():
            fail(f"dataset_info: {name} file missing")

    print(f"c4_demo {len(docs)} | alpaca {len(alpaca)} ({sum(1 for r in alpaca if r['input'])} with input) | "
          f"identity {len(ident)} ({with_author} with author) | dpo {len(dpo)} ({multi} multi-turn) | "
          f"kto {len(kto)} ({labels.count(True)} true) | math {len(math)} ({n_arith} arithmetic, {n_word} word)")
    print(f"computed answers checked: {checked['computed']}")
    print("sizes:", sizes)
    for e in errors[:50]:
        print("FAIL", e)
    print("OK" if not errors else f"{len(errors)} failures")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
