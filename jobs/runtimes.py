"""What each runtime is: language version and the handler conventions users write against."""

from __future__ import annotations

RUNTIME_INFO = {
    "python": {
        "language": "Python",
        "version": "3.11",
        "example": "def main(a, b):\n    return a + b\n",
        "notes": "def or async def; args are passed positionally; the return value must be "
        "JSON-serialisable.",
    },
    "node": {
        "language": "JavaScript (Node.js)",
        "version": "22",
        "example": "function main(a, b) {\n  return a + b;\n}\n",
        "notes": "function or async function (or module.exports.main); the return value must be "
        "JSON-serialisable.",
    },
}
