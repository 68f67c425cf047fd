"""What every export (CSV and JSON downloads) shares: cells a spreadsheet cannot run.

A cell that starts with `=`, `+`, `-` or `@` is a formula to Excel, LibreOffice and Google
Sheets, and a leading TAB or CR is stripped by some of them before the cell is read, so
"\\t=cmd|…" becomes a formula too. Exports carry names that came from the cloud or from a
person (server names, reasons, error messages); any of them could start that way.
"""

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """`value` as text a spreadsheet shows as text: a risky first character gets a `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
