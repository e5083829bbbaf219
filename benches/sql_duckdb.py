"""DuckDB's side of the sql benchmark: the 22 TPC-H queries over the benchmark's Parquet files.

    python3 benches/sql_duckdb.py <files dir> <out dir> <scale factor>

Writes <out>/qNN.csv (the answers, to check cloudlet-sql's against) and <out>/times.txt (the
mean seconds per query over three runs after one warm-up). Installs the duckdb package with pip
when it is missing: a peer to compare against, never a dependency of cloudlet.
"""

import pathlib
import subprocess
import sys
import time

try:
    import duckdb
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "duckdb"])
    import duckdb

TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


def main(files: str, out: str, scale: float) -> None:
    queries = pathlib.Path(__file__).parent.parent / "crates/sql/tests/tpch"
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}/{table}/data.parquet')"
        )
    times = []
    for n in range(1, 23):
        name = f"q{n:02}"
        sql = (queries / f"{name}.sql").read_text()
        if n == 11:
            sql = sql.replace("0.0001", repr(0.0001 / scale))
        con.execute(f"COPY ({sql}) TO '{out_dir}/{name}.csv' (HEADER)")
        start = time.perf_counter()
        for _ in range(3):
            con.execute(sql).fetchall()
        times.append(f"{name} {(time.perf_counter() - start) / 3}")
    (out_dir / "times.txt").write_text("\n".join(times) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
