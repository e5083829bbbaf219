"""Writes the TPC-H answers the sql crate's tpch test checks against, with DuckDB.

    CLOUDLET_TPCH_DUMP=/tmp/tpch-sf001 cargo nextest run -p cloudlet-sql --test tpch
    python3 crates/sql/tests/tpch/answers.py /tmp/tpch-sf001

DuckDB reads the same Parquet files the test generates; it is a peer to compare against,
installed here only, never a dependency of the crate.
"""

import pathlib
import subprocess
import sys

try:
    import duckdb
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"])
    import duckdb

TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]
SCALE = 0.01


def main(data: str) -> None:
    here = pathlib.Path(__file__).parent
    out = here / "answers"
    out.mkdir(exist_ok=True)
    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data}/{table}/data.parquet')"
        )
    for n in range(1, 23):
        sql = (here / f"q{n:02}.sql").read_text()
        if n == 11:
            sql = sql.replace("0.0001", repr(0.0001 / SCALE))
        con.execute(f"COPY ({sql}) TO '{out}/q{n:02}.csv' (HEADER)")


if __name__ == "__main__":
    main(sys.argv[1])
