"""What a run leaves behind: metrics.csv flushed row by row, summary.json, a rich console view."""
from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


class MetricsLog:
    """Append-only CSV, one row per step, flushed as written so a killed run loses nothing."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = Path(path), columns
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
        if fresh:
            self.writer.writeheader()
            self.file.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def write_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def git_commit() -> str | None:
    """HEAD of the repository this package runs from, with '-dirty' if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3e}  {task.fields[scalars]}"), TimeElapsedColumn(),
                    console=console, transient=False)


def summary_table(summary: dict) -> Table:
    table = Table(title="run summary", show_header=False)
    for key, value in summary.items():
        if isinstance(value, float) and math.isfinite(value) and value != 0 and not 1e-3 <= abs(value) < 1e6:
            value = f"{value:.6e}"
        table.add_row(key, str(value))
    return table
