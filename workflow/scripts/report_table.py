"""Rules report_*_table: a summary table as an HTML page, shown inline in the Snakemake report."""

from selfexplain.runlog import to_log_file

to_log_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from selfexplain.report import render_table_page, write_html  # noqa: E402

table = pd.read_csv(snakemake.input[0])
write_html(render_table_page(snakemake.params.kind, table, set(snakemake.params.synthetic)), snakemake.output[0])
