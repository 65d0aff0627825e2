"""The screening's SQL models and the order they run in, declared next to the SQL.

Every file under sql/intermediate, sql/criteria, sql/marts and sql/measures is a model. Its
header names what it reads, in one or more lines::

    -- reads: lab_results, rule_analytes

A name there is another model (an intermediate table by its file name, a macro by its own name,
a criterion or measure by its id, a mart by its file name: ``flags``, ``worklist``,
``resolved``) or a stored table the run does not build (``lab_results``, ``rule_analytes``,
``worklist_history``...). A model that reads the flags table names the criteria whose flags it
reads (a criterion, or a macro that criteria call) or, after the criteria, the ``flags`` mart;
the flags mart itself reads ``criteria`` (all of them). Measures and the other marts always run
after the flags mart, so the flags they read are the reviewed ones.

At start-up :func:`model_graph` parses every model with DuckDB's own parser
(``json_serialize_sql``) and checks that each header says exactly what the SQL reads (tables,
macros it calls, criterion ids it selects from the flags table), that every name read exists,
that no intermediate table reads flags (the intermediates are built before any criterion), and
that the graph has no cycle. The run order is derived from it: a model runs after everything it
reads; criteria that do not depend on one another keep the catalogue order of the rules file,
so that order is only a tie-break and a criterion placed before its inputs still runs after them.
A header that disagrees with its SQL stops the run with one line naming the file.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from types import MappingProxyType

import duckdb

from pipeline import resources
from pipeline.sqltext import memory_bytes

FOLDERS = ("intermediate", "criteria", "marts", "measures")
FLAGS_TABLE = "run_flags"
ALL_CRITERIA = "criteria"
# what a mart is materialised as (the tables the runner and the outputs read)
MART_TABLES = {"flags": FLAGS_TABLE, "worklist": "run_worklist", "resolved": "run_resolved"}

_READS = re.compile(r"^--\s*reads:(.*)$", re.MULTILINE)
_MACRO = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+TEMP\s+MACRO\s+(\w+)\s*\((.*?)\)\s+AS\s+TABLE(.*?);",
    re.IGNORECASE | re.DOTALL,
)


class ModelGraphError(RuntimeError):
    """The SQL models disagree with their headers, or with one another (a bug in sql/)."""


@dataclass(frozen=True)
class Model:
    name: str
    kind: str  # table | macros | criterion | mart | measure
    path: Path
    where: str  # the file as errors name it: sql/<folder>/<file>.sql
    reads: frozenset[str]  # as declared in the header
    provides: frozenset[str]  # the names others read it by (a macro file: its macros)
    sql: str


@dataclass(frozen=True)
class ModelGraph:
    models: Mapping[str, Model]  # by model name (file stem)
    names: Mapping[str, str]  # every name a model provides -> the model providing it
    deps: Mapping[str, frozenset[str]]  # model -> the models it runs after

    def of_kind(self, kind: str) -> list[str]:
        return sorted(n for n, m in self.models.items() if m.kind == kind)

    def upstream(self, targets: Iterable[str]) -> set[str]:
        """``targets`` and every model they read, directly or not."""
        need: set[str] = set()
        stack = list(targets)
        while stack:
            name = stack.pop()
            if name not in need:
                need.add(name)
                stack.extend(self.deps[name])
        return need

    def order(self, targets: Iterable[str], catalogue: list[str]) -> list[str]:
        """``targets`` and everything upstream of them, each after all it reads.

        Of the models ready to run, the one needed by the earliest criterion of the catalogue
        goes first (ties and models no criterion needs: by name): the order is the same on
        every run and follows the rules file wherever the graph allows. (graphlib hands out ready nodes in batches with no priority, so this is
        Kahn's algorithm over a heap.)
        """
        need = self.upstream(targets)
        # a model ranks as the first criterion in the catalogue that needs it
        rank: dict[str, int] = {}
        for i, cid in enumerate(catalogue):
            if cid in need:
                for name in self.upstream([cid]):
                    rank.setdefault(name, i)
        waiting = {n: len(self.deps[n] & need) for n in need}
        dependents: dict[str, list[str]] = {n: [] for n in need}
        for n in need:
            for d in self.deps[n] & need:
                dependents[d].append(n)
        ready = [(rank.get(n, len(rank)), n) for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        ordered: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            ordered.append(name)
            for d in dependents[name]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    heapq.heappush(ready, (rank.get(d, len(rank)), d))
        return ordered


def _declared(where: str, text: str) -> frozenset[str]:
    lines = _READS.findall(text)
    if not lines:
        raise ModelGraphError(f"{where}: no '-- reads:' line (name what the model reads)")
    names = [n.strip() for line in lines for n in line.split(",")]
    return frozenset(n for n in names if n and n != "nothing")


def _parse(con: duckdb.DuckDBPyConnection, where: str, sql: str) -> dict:
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise ModelGraphError(f"{where}: cannot parse: {tree.get('error_message', 'error')}")
    return tree


def _references(tree: object) -> tuple[set[str], set[str], set[str]]:
    """(tables, functions, string constants) a parse tree refers to; CTE names are scoped."""
    tables: set[str] = set()
    functions: set[str] = set()
    strings: set[str] = set()

    def walk(node: object, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, ctes)
            return
        if not isinstance(node, dict):
            return
        if node.get("type") == "BASE_TABLE" and node["table_name"] not in ctes:
            tables.add(node["table_name"])
        if node.get("class") == "FUNCTION" and "function_name" in node:
            functions.add(node["function_name"])
        if node.get("class") == "CONSTANT" and node.get("literal", {}).get("kind") == "STRING":
            strings.add(node["literal"]["text"])
        scope = ctes
        for entry in (node.get("cte_map") or {}).get("map", []):
            walk(entry["value"], scope)  # a CTE sees the ones before it, not itself
            scope = scope | {entry["key"]}
        for key, value in node.items():
            if key != "cte_map":
                walk(value, scope)

    walk(tree, frozenset())
    return tables, functions, strings


def _load(root: Path) -> dict[str, tuple[Model, set[str], set[str], set[str]]]:
    con = duckdb.connect()
    found: dict[str, tuple[Model, set[str], set[str], set[str]]] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.sql")):
            where = f"sql/{folder}/{path.name}"
            text = path.read_text(encoding="utf-8")
            macros = _MACRO.findall(text)
            kind = {"criteria": "criterion", "marts": "mart", "measures": "measure"}.get(
                folder, "macros" if macros else "table"
            )
            if macros:
                bodies = [body for _, _, body in macros]
                provides = frozenset(name for name, _, _ in macros)
            else:
                bodies = [text]
                provides = frozenset({path.stem})
            tables: set[str] = set()
            functions: set[str] = set()
            strings: set[str] = set()
            for body in bodies:
                t, f, s = _references(_parse(con, where, body))
                tables |= t
                functions |= f
                strings |= s
            if path.stem in found:
                raise ModelGraphError(f"{where}: a second model named {path.stem!r}")
            model = Model(
                name=path.stem,
                kind=kind,
                path=path,
                where=where,
                reads=_declared(where, text),
                provides=provides,
                sql=text,
            )
            found[path.stem] = (model, tables, functions, strings)
    con.close()
    return found


def _actual_reads(
    model: Model,
    tables: set[str],
    functions: set[str],
    strings: set[str],
    names: Mapping[str, str],
    criteria: set[str],
) -> set[str]:
    """What the SQL of ``model`` reads, in the names a header uses."""
    by_table = {table: mart for mart, table in MART_TABLES.items()}
    reads: set[str] = set()
    for table in tables:
        if table == FLAGS_TABLE:
            if model.kind in ("criterion", "macros"):
                named = (strings & criteria) - {model.name}
                if not named:
                    raise ModelGraphError(
                        f"{model.where}: reads {FLAGS_TABLE} without naming the criteria "
                        "whose flags it reads"
                    )
                reads |= named
            elif model.name == "flags":
                reads.add(ALL_CRITERIA)
            else:
                reads.add("flags")
        elif table in by_table:
            reads.add(by_table[table])
        else:
            reads.add(table)  # an intermediate table, or a stored table
    reads |= {f for f in functions if f in names and names[f] != model.name}
    return reads


@cache
def model_graph(sql_root: Path | None = None) -> ModelGraph:
    """Parse and check every model; the graph the run order is derived from."""
    found = _load(sql_root or resources.sql_dir())
    names: dict[str, str] = {}
    for model, *_ in found.values():
        for provided in model.provides | {model.name}:
            if provided in names and names[provided] != model.name:
                raise ModelGraphError(
                    f"{model.where}: {provided!r} is also provided by "
                    f"{found[names[provided]][0].where}"
                )
            names[provided] = model.name
    criteria = {m.name for m, *_ in found.values() if m.kind == "criterion"}
    deps: dict[str, frozenset[str]] = {}
    for model, tables, functions, strings in found.values():
        actual = _actual_reads(model, tables, functions, strings, names, criteria)
        if missing := sorted(actual - model.reads):
            raise ModelGraphError(
                f"{model.where}: reads {', '.join(missing)} but its '-- reads:' line "
                "does not say so"
            )
        if extra := sorted(model.reads - actual):
            raise ModelGraphError(
                f"{model.where}: '-- reads:' names {', '.join(extra)}, which its SQL does not read"
            )
        upstream = {names[n] for n in model.reads if n in names}
        if ALL_CRITERIA in model.reads:
            upstream |= criteria
        if model.kind in ("mart", "measure") and model.name != "flags":
            upstream.add("flags")  # what follows the criteria reads the reviewed flags
        deps[model.name] = frozenset(upstream)
    try:
        tuple(TopologicalSorter(deps).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        where = found[cycle[0]][0].where
        raise ModelGraphError(
            f"{where}: models read one another in a circle: {' -> '.join(cycle)}"
        ) from None
    graph = ModelGraph(
        models=MappingProxyType({n: m for n, (m, *_) in found.items()}),
        names=MappingProxyType(names),
        deps=MappingProxyType(deps),
    )
    for name in graph.of_kind("table"):
        if flagged := sorted(graph.upstream([name]) & criteria):
            raise ModelGraphError(
                f"{graph.models[name].where}: an intermediate table reads the flags of "
                f"{flagged[0]}; intermediates are built before the criteria"
            )
    return graph


# What building the worklist holds in memory per flag row, about (each patient's criteria,
# actions, evidence and advice as text, aggregated in order): at 10M lab rows (176k flags) one
# statement ran out of memory under 120MB. A larger population's is built in parts of patients.
WORKLIST_FLAG_BYTES = 2000


def worklist_parts(con: duckdb.DuckDBPyConnection) -> int:
    """In how many parts of patients the worklist is built: as many as keep each part's
    working memory (:data:`WORKLIST_FLAG_BYTES` a flag) within the memory limit."""
    ((flags, limit),) = con.execute(
        f"SELECT (SELECT count(*) FROM {FLAGS_TABLE}), current_setting('memory_limit')"
    ).fetchall()
    size = memory_bytes(str(limit))
    if not size:
        return 1
    return max(1, math.ceil(flags * WORKLIST_FLAG_BYTES / size))


class ModelRun:
    """The models one run has built on its connection, and the building of the rest.

    Tables become temporary tables named after the file, macro files are executed, marts become
    the tables of :data:`MART_TABLES` (the flags mart replaces the criteria's flags with the
    reviewed ones). Criteria and measures are inserted by their own stage
    (pipeline/screening/criteria.py, measures.py), which marks them built.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, catalogue: list[str], graph: ModelGraph | None = None
    ) -> None:
        self.con = con
        self.catalogue = list(catalogue)
        self.graph = graph or model_graph()
        self.built: set[str] = set()

    def plan(self, targets: Iterable[str]) -> list[Model]:
        """The models still to build for ``targets``, in run order."""
        order = self.graph.order(targets, self.catalogue)
        return [self.graph.models[n] for n in order if n not in self.built]

    def build(self, targets: Iterable[str]) -> None:
        """Build ``targets`` and what they read; criteria and measures must be built already."""
        for model in self.plan(targets):
            self.materialize(model)

    def _worklist(self, model: Model, parts: int | None = None) -> None:
        """The worklist mart in ``parts`` parts of patients (default :func:`worklist_parts`),
        one statement each, then put in order once: most urgent first, then most criteria met,
        then patient_id."""
        con = self.con
        parts = parts or worklist_parts(con)
        con.execute("DROP TABLE IF EXISTS temp._worklist_parts")
        for part in range(parts):
            con.execute('SET VARIABLE "run.worklist_parts" = ?', [parts])
            con.execute('SET VARIABLE "run.worklist_part" = ?', [part])
            if part == 0:
                con.execute(f"CREATE TEMP TABLE _worklist_parts AS {model.sql}")
            else:
                con.execute(f"INSERT INTO _worklist_parts BY NAME {model.sql}")
        con.execute('RESET VARIABLE "run.worklist_parts"; RESET VARIABLE "run.worklist_part"')
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {MART_TABLES['worklist']} AS "
            "SELECT * EXCLUDE (priority_rank, criteria_count) FROM _worklist_parts "
            "ORDER BY priority_rank, criteria_count DESC, patient_id"
        )
        con.execute("DROP TABLE _worklist_parts")

    def materialize(self, model: Model) -> None:
        con = self.con
        if model.kind == "table":
            con.execute(f"CREATE OR REPLACE TEMP TABLE {model.name} AS {model.sql}")
        elif model.kind == "macros":
            con.execute(model.sql)
        elif model.name == "flags":
            con.execute(f"CREATE OR REPLACE TEMP TABLE run_flags_reviewed AS {model.sql}")
            con.execute(f"DROP TABLE {FLAGS_TABLE}")
            con.execute(f"ALTER TABLE run_flags_reviewed RENAME TO {FLAGS_TABLE}")
        elif model.name == "worklist":
            self._worklist(model)
        elif model.kind == "mart":
            con.execute(f"CREATE OR REPLACE TEMP TABLE {MART_TABLES[model.name]} AS {model.sql}")
        else:
            raise ModelGraphError(
                f"{model.where}: a {model.kind} is built by its own stage, before what reads it"
            )
        self.built.add(model.name)
