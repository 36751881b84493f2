"""The new-job page's examples menu, in both runtimes. Each title says what its arguments make it do,
and every one ends as its title promises within the page's default limits (5 s, 128 MB), a cold start
included: ``test_examples.py`` checks the words, ``test_views.py`` runs them."""

from __future__ import annotations

EXAMPLES = [
    {
        "key": "add",
        "title": "Add two numbers (2 + 3)",
        "args": "[2, 3]",
        "python": "def main(a, b):\n    return a + b\n",
        "node": "function main(a, b) {\n  return a + b;\n}\n",
    },
    {
        "key": "sum",
        "title": "Sum an array (1 to 5)",
        "args": "[[1, 2, 3, 4, 5]]",
        "python": "def main(numbers):\n    return sum(numbers)\n",
        "node": "function main(numbers) {\n  return numbers.reduce((total, n) => total + n, 0);\n}\n",
    },
    {
        "key": "async",
        "title": "Async: wait 0.5 s",
        "args": "[0.5]",
        "python": "import asyncio\n\n\nasync def main(seconds):\n    await "
        'asyncio.sleep(seconds)\n    return f"waited {seconds} s"\n',
        "node": "async function main(seconds) {\n  await new Promise((resolve) => "
        "setTimeout(resolve, seconds * 1000));\n  return `waited ${seconds} s`;\n}\n",
    },
    {
        "key": "fail",
        "title": "A failing one (shows the error)",
        "args": "[]",
        "python": 'def main():\n    numbers = {"a": 1}\n    return numbers["b"]  # KeyError: shows '
        "the traceback\n",
        "node": "function main() {\n  const numbers = { a: 1 };\n  return numbers.b.toFixed(2); "
        "// TypeError: shows the stack\n}\n",
    },
    {
        "key": "ticker",
        "title": "Print a line a second, 3 times",
        "args": "[3]",  # 3 s: well inside the page's default time limit (5 s), cold start included
        "python": "import sys\nimport time\n\n\ndef main(n):\n    for i in range(1, n + 1):\n      "
        '  print(f"tick {i} of {n}", flush=True)\n        time.sleep(1)\n    '
        'print("done", file=sys.stderr)\n    return n\n',
        "node": "async function main(n) {\n  for (let i = 1; i <= n; i++) {\n    "
        "console.log(`tick ${i} of ${n}`);\n    await new Promise((resolve) => "
        'setTimeout(resolve, 1000));\n  }\n  console.error("done");\n  return n;\n}\n',
    },
]

TEMPLATES = {"python": EXAMPLES[0]["python"], "node": EXAMPLES[0]["node"]}
