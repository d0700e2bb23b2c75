"""What a user does in the Dagster UI after `make ui`, in a real headless Chromium against a real
`dagster-webserver` and `dagster-daemon`: find the extraction asset, launch one corpus partition, watch
the run succeed, and read the extracted row count the UI shows, which must be the store's.

Launching `biography_extractions` alone warns that its upstream `corpus_documents` was never
materialised (it would find no documents), so the test does what a user then does: follows the asset's
job (`extract_corpus`) and uses "Materialize all" with the corpus partition selected.
Screenshots of every step go to test-artifacts/ui/.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.ui.servers import ARTIFACTS, dagster_project, sample_documents, write_corpus

pytestmark = [pytest.mark.vllm, pytest.mark.dagster_daemon, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ARTIFACTS / "ui"
RUN_TIMEOUT_S = 420
CORPUS = "ui_letters"
ROW_COUNT_KEY = "dagster/partition_row_count"


def test_launch_partition_from_ui_and_read_row_count(tmp_path, vllm_url, vllm_model):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    started = time.monotonic()
    docs = sample_documents(2)

    with dagster_project(tmp_path, vllm_url, vllm_model, "stopped") as p:
        write_corpus(p.source_root, CORPUS, docs)
        with p.instance() as instance:
            instance.add_dynamic_partitions("corpora", [CORPUS])
        p.start_daemon()
        p.start_webserver()
        servers_up = time.monotonic()

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)  # two busy cores: the UI's first queries are slow
            # A fresh instance greets the first visitor with a newsletter dialog; dismiss it whenever it shows.
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"),
                # A DOM click, not a pointer click: the popup can open late, under another dialog
                # (seen: under the upstream warning), where a pointer click is intercepted forever.
                lambda: page.get_by_role("button", name="Skip").dispatch_event("click"),
            )
            step = 0

            def shot(name: str) -> None:
                nonlocal step
                step += 1
                page.screenshot(path=str(SHOTS / f"{step:02d}-{name}.png"), full_page=True)

            try:
                # The asset graph (the "Lineage" page): the corpora -> extractions -> tables groups.
                page.goto(f"{p.url}/asset-groups")
                page.get_by_text("Global asset lineage").wait_for()
                for group in ("corpora", "extractions", "tables"):
                    page.get_by_text(group, exact=True).first.wait_for()
                shot("asset-graph")

                # The catalog lists the asset; its page offers Materialize.
                page.get_by_role("link", name="Catalog").click()
                # The catalog repeats the name in the link (for truncation), hence the pattern.
                page.get_by_role("link", name=re.compile(r"^biography_extractions\b")).click()
                materialize = page.get_by_role("button", name="Materialize…")
                materialize.wait_for()
                page.get_by_role("link", name="extract_corpus").wait_for()
                shot("asset-page")

                # Alone, the asset would read an empty corpus: the UI says its upstream is missing.
                materialize.click()
                warning = page.get_by_role("dialog").filter(has_text="upstream")
                warning.get_by_text("corpus_documents").wait_for()
                shot("upstream-missing-warning")
                warning.get_by_role("button", name="Cancel").click()

                # The asset's job materialises the lineage: corpus_documents -> extractions -> table.
                page.get_by_role("link", name="extract_corpus").click()
                page.get_by_role("button", name="Materialize all…").click()
                dialog = page.get_by_role("dialog")
                dialog.get_by_text("Partition selection").wait_for()
                shot("partition-dialog")
                dialog.get_by_text("Select a partition or create one").click()
                page.get_by_role("menuitem", name=CORPUS).click()
                page.keyboard.press("Escape")  # close the partition list, keep the dialog
                launch = dialog.get_by_role("button", name="Launch 1 run")
                launch.wait_for()
                shot("partition-selected")
                launch.click()
                toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
                toast.wait_for()
                shot("run-launched")
                short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)  # type: ignore[union-attr]

                runs = p.runs(CORPUS)
                assert [r.run_id[:8] for r in runs] == [short_id], [
                    (r.run_id, r.tags) for r in runs
                ]
                run = runs[0]
                assert run.tags.get("dagster/from_ui") == "true", run.tags
                launched = time.monotonic()
                p.wait_for_run(run.run_id, RUN_TIMEOUT_S)
                run_done = time.monotonic()

                page.goto(f"{p.url}/runs/{run.run_id}")
                page.get_by_text("Success", exact=True).first.wait_for()
                page.get_by_text("Loading run logs").wait_for(state="hidden")
                shot("run-succeeded")

                # The partition's latest materialisation shows its row count.
                page.goto(
                    f"{p.url}/assets/biography_extractions?view=partitions&partition={CORPUS}"
                )
                row = page.get_by_role("row").filter(has_text=ROW_COUNT_KEY)
                row.wait_for()
                shot("partition-row-count")
                shown = re.sub(r"\s+", " ", row.inner_text()).strip()
                match = re.fullmatch(re.escape(ROW_COUNT_KEY) + r" (\d+)", shown)
                assert match, f"row count cell reads {shown!r}"
                ui_rows = int(match.group(1))
            except Exception as exc:
                page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
                raise AssertionError(f"{exc}\n(screenshots in {SHOTS})\n{p.tail()}") from exc
            finally:
                browser.close()

        # The UI's count is the store's: ok extractions of the corpus, as in the typed view.
        statuses = p.query(
            "SELECT status, count(*) FROM extractions WHERE corpus = ? AND task = 'biography' GROUP BY status",
            [CORPUS],
        )
        by_status = dict(statuses)
        assert sum(by_status.values()) == len(docs), f"every document extracted once: {by_status}"
        typed = p.query("SELECT count(*) FROM biography_extractions WHERE corpus = ?", [CORPUS])[0][
            0
        ]
        assert ui_rows == by_status.get("ok", 0) == typed, (ui_rows, by_status, typed)
        assert p.query("SELECT DISTINCT run_id FROM extractions WHERE corpus = ?", [CORPUS]) == [
            (run.run_id,)
        ]
    print(
        f"\ntiming: servers up {servers_up - started:.0f} s, UI to launch {launched - servers_up:.0f} s, "
        f"run {run_done - launched:.0f} s, total {time.monotonic() - started:.0f} s; {ui_rows} rows"
    )
