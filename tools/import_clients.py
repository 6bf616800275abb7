"""Import clients and contacts from an Excel (.xlsx) or CSV file through the gateway.

    python -m tools.import_clients clients.xlsx --mapping mapping.json \\
        --gateway http://127.0.0.1:8000 --username head.ural --password ... [--dry-run]

``mapping.json`` maps the file's column headers to fields, e.g.
``{"Название": "short_name", "ИНН": "inn", "Телефоны": "phones", "Контакт": "contact_name"}``
(fields: short_name, full_name, inn, kpp, ogrn, region, phones, emails, website, industry,
segment, status, source, address, contact_name, contact_position, contact_phones,
contact_emails, owner_id).

The import is one request: the command shows the upload, then a spinner while the server checks
and writes the rows, then the totals and every refused row with its reason. ``--report FILE``
saves the whole report (every row) as JSON. Exit status: 0 when the import ran (even with refused
rows), 1 when the gateway refused it or could not be reached, 2 for a local problem (no file, bad
mapping file). The password may come from ``CRM_PASSWORD`` instead of the command line.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_GATEWAY = "http://127.0.0.1:8000"
STATUS_NAMES = {"created": "создан", "merged": "объединён", "refused": "отклонён"}


class UploadBody:
    """The request body, read by the HTTP client in blocks: each block moves the progress bar,
    and the last one switches it to waiting for the server."""

    def __init__(self, data: bytes, on_read, on_done):
        self._data = data
        self._position = 0
        self._on_read = on_read
        self._on_done = on_done
        self._done = False

    def __len__(self):
        return len(self._data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = len(self._data) - self._position
        block = self._data[self._position:self._position + size]
        self._position += len(block)
        if block:
            self._on_read(len(block))
        elif not self._done:
            self._done = True
            self._on_done()
        return block


class GatewayError(Exception):
    def __init__(self, message: str, problem: dict | None = None):
        super().__init__(message)
        self.problem = problem or {}


def problem_of(response: requests.Response) -> GatewayError:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    detail = problem.get("detail") or problem.get("title") or response.reason
    return GatewayError(f"{response.status_code}: {detail}", problem)


def login(session: requests.Session, gateway: str, username: str, password: str,
          timeout: float) -> str:
    response = session.post(f"{gateway}/api/v1/auth/login",
                            json={"username": username, "password": password}, timeout=timeout)
    if response.status_code != 200:
        raise problem_of(response)
    return response.json()["access_token"]


def run_import(session: requests.Session, gateway: str, token: str, body: bytes,
               progress: Progress, timeout: float) -> dict:
    task = progress.add_task("Отправка файла", total=len(body))

    def waiting():
        progress.update(task, description="Сервер проверяет и записывает строки", total=None)

    upload = UploadBody(body, lambda n: progress.advance(task, n), waiting)
    response = session.post(
        f"{gateway}/api/v1/clients/import", data=upload,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=(30, timeout))
    progress.update(task, description="Готово", total=1, completed=1)
    if response.status_code != 200:
        raise problem_of(response)
    return response.json()


def error_text(errors: list[dict]) -> str:
    return "\n".join(f"{e.get('column') or e.get('field')}: {'; '.join(e.get('reasons') or ())}"
                     + (f" («{e['value']}»)" if e.get("value") else "") for e in errors)


def render_report(console: Console, report: dict, show: int) -> None:
    totals = report["totals"]
    if report.get("dry_run"):
        console.print("[yellow]Пробный запуск: ничего не записано[/yellow]")
    summary = Table(title="Итоги импорта", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("", justify="right")
    summary.add_row("Строк в файле", str(totals["rows"]))
    summary.add_row("Создано клиентов", f"[green]{totals['created']}[/green]")
    summary.add_row("Объединено", str(totals["merged"]))
    summary.add_row("  из них с клиентами в базе", str(totals.get("merged_into_existing", 0)))
    summary.add_row("Отклонено", f"[red]{totals['refused']}[/red]" if totals["refused"]
                    else "0")
    console.print(summary)

    refused = [row for row in report["rows"] if row["status"] == "refused"]
    if refused:
        table = Table(title="Отклонённые строки", show_lines=True)
        table.add_column("Строка", justify="right")
        table.add_column("Причина", overflow="fold")
        table.add_column("Поля", overflow="fold")
        for row in refused[:show]:
            errors = row.get("errors") or []
            # The fields column details a validation refusal; its reason would repeat them.
            reason = "Неверные значения" if errors else row.get("reason", "")
            table.add_row(str(row["row"]), reason, error_text(errors))
        console.print(table)
        if len(refused) > show:
            console.print(f"… и ещё {len(refused) - show} отклонённых строк "
                          "(весь отчёт: --report FILE)")
    warned = [row for row in report["rows"] if row.get("warnings")]
    if warned:
        table = Table(title="Замечания")
        table.add_column("Строка", justify="right")
        table.add_column("Замечание", overflow="fold")
        for row in warned[:show]:
            table.add_row(str(row["row"]), "\n".join(row["warnings"]))
        console.print(table)


def render_problem(console: Console, error: GatewayError) -> None:
    console.print(f"[red]Импорт не выполнен[/red] — {error}")
    for item in error.problem.get("errors") or ():
        console.print(f"  {item.get('field')}: {'; '.join(item.get('reasons') or ())}")
    if error.problem.get("columns"):
        console.print("  Столбцы в файле: " + ", ".join(error.problem["columns"]))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tools.import_clients",
        description="Импорт клиентов и контактов из .xlsx/.csv через шлюз CRM")
    parser.add_argument("file", type=Path, help=".xlsx or .csv file")
    parser.add_argument("--mapping", required=True,
                        help="JSON file {column header: field} (or the JSON itself)")
    parser.add_argument("--gateway", default=os.environ.get("CRM_GATEWAY_URL", DEFAULT_GATEWAY))
    parser.add_argument("--username", default=os.environ.get("CRM_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("CRM_PASSWORD"))
    parser.add_argument("--dry-run", action="store_true", help="only report, write nothing")
    parser.add_argument("--owner-id", help="sales heads and directors: whose clients")
    parser.add_argument("--report", type=Path, help="save the full report (JSON) here")
    parser.add_argument("--show", type=int, default=200,
                        help="refused rows to print (default 200)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for the server (default 1800)")
    return parser.parse_args(argv)


def load_mapping(text: str) -> dict:
    source = text if text.lstrip().startswith("{") else Path(text).read_text(encoding="utf-8-sig")
    mapping = json.loads(source)
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("нужен JSON-объект {заголовок столбца: поле}")
    return mapping


def main(argv=None, console: Console | None = None) -> int:
    args = parse_args(argv)
    console = console or Console()
    try:
        mapping = load_mapping(args.mapping)
    except (OSError, ValueError) as exc:
        console.print(f"[red]Сопоставление столбцов не прочитано:[/red] {exc}")
        return 2
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        console.print(f"[red]Файл не прочитан:[/red] {exc}")
        return 2
    if len(data) > MAX_FILE_BYTES:
        console.print(f"[red]Файл больше {MAX_FILE_BYTES // (1024 * 1024)} МБ:[/red] "
                      "разбейте его на части")
        return 2
    username = args.username or input("Логин: ")
    password = args.password or getpass.getpass("Пароль: ")
    body = json.dumps({"file_base64": base64.b64encode(data).decode("ascii"),
                       "filename": args.file.name, "mapping": mapping,
                       "dry_run": args.dry_run, "owner_id": args.owner_id}).encode("utf-8")
    gateway = args.gateway.rstrip("/")

    with requests.Session() as session:
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                          DownloadColumn(), TimeElapsedColumn(), console=console) as progress:
                signing_in = progress.add_task(f"Вход как {username}", total=None)
                token = login(session, gateway, username, password, timeout=30)
                progress.update(signing_in, total=1, completed=1)
                report = run_import(session, gateway, token, body, progress, args.timeout)
        except GatewayError as error:
            render_problem(console, error)
            return 1
        except requests.RequestException as exc:
            console.print(f"[red]Шлюз {gateway} недоступен:[/red] {exc}")
            return 1
    if args.report:
        args.report.write_text(json.dumps(report, ensure_ascii=False, indent=2),
                               encoding="utf-8")
        console.print(f"Полный отчёт: {args.report}")
    render_report(console, report, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
