"""Rule report_front_page: what was run, versions and headline numbers, as a report page and as the fragment the
report's landing page (the workflow description) includes."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

from selfexplain.io import provenance  # noqa: E402
from selfexplain.report import front_page_document, front_page_fragment, load_front_page, write_html  # noqa: E402


def files(name):
    """The files of a named input (none for a study not run)."""
    return list(getattr(snakemake.input, name))


def single(name):
    found = files(name)
    return found[0] if found else None


page = load_front_page(
    studies=snakemake.params.studies,
    models=snakemake.params.models,
    sce=snakemake.params.sce,
    simulatability=snakemake.params.simulatability,
    sce_summary=single("sce_summary"),
    sim_summary=single("sim_summary"),
    sim_metrics=files("sim_metrics"),
    eval_set=single("eval_set"),
    stamped=files("sce_metrics") + files("sim_metrics") + files("tables") + files("eval_set"),
    built=provenance(stage="report_front_page"),
    sections=snakemake.params.sections,
)
write_html(front_page_document(page), snakemake.output.page)
write_html(front_page_fragment(page), snakemake.output.fragment)
