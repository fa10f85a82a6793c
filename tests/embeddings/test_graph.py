"""Graph: CSR building rules, reports, the four constructors agreeing, exact error messages."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.graph import Graph


def rows(graph: Graph) -> dict:
    """{node: [(neighbour, weight), ...]} for comparing graphs."""
    weights = graph.weights if graph.weights is not None else np.ones(graph.indices.size)
    out = {}
    for i, node in enumerate(graph.nodes.to_list()):
        lo, hi = graph.indptr[i], graph.indptr[i + 1]
        out[node] = [(graph.nodes[int(j)], float(w)) for j, w in zip(graph.indices[lo:hi], weights[lo:hi])]
    return out


def test_undirected_edges_become_a_sorted_symmetric_csr_with_a_report():
    edges = pl.DataFrame({"src": ["b", "a", "c", "a", "d"], "dst": ["a", "c", "a", "a", "c"]})
    graph, report = Graph.from_edges(edges, nodes=["a", "b", "c", "d", "e"])
    assert graph.nodes.to_list() == ["a", "b", "c", "d", "e"]
    assert graph.indptr.dtype == np.int64 and graph.indices.dtype == np.int32 and graph.weights is None
    # a-b, a-c (listed twice: "a c" and "c a"), c-d; the self-loop a-a is dropped
    assert rows(graph) == {
        "a": [("b", 1.0), ("c", 1.0)],
        "b": [("a", 1.0)],
        "c": [("a", 1.0), ("d", 1.0)],
        "d": [("c", 1.0)],
        "e": [],
    }
    assert (graph.n_nodes, graph.n_edges) == (5, 3)
    assert (report.nodes, report.edges, report.isolated) == (5, 3, 1)
    assert (report.duplicates, report.self_loops_dropped, report.unknown_dropped) == (1, 1, 0)
    assert graph.degree().tolist() == [2, 1, 2, 1, 0]
    assert graph.neighbours("c") == ["a", "d"]
    assert graph.index_of("d") == 3
    assert graph.indices_of(["d", "zz", "a"]).tolist() == [3, -1, 0]
    with pytest.raises(NotFoundError, match="node 'zz' is not in the graph"):
        graph.index_of("zz")


def test_weighted_duplicates_are_summed_and_zero_weights_dropped():
    edges = pl.DataFrame({"src": [1, 2, 1, 3], "dst": [2, 1, 3, 4], "w": [1.5, 2.0, 0.0, 4.0]})
    graph, report = Graph.from_edges(edges, weight="w")
    assert graph.nodes.to_list() == [1, 2, 3, 4]
    assert rows(graph) == {1: [(2, 3.5)], 2: [(1, 3.5)], 3: [(4, 4.0)], 4: [(3, 4.0)]}
    assert graph.weights.dtype == np.float32
    assert (report.duplicates, report.zero_weight_dropped, report.edges) == (1, 1, 2)
    assert graph.degree(weighted=True).tolist() == [3.5, 3.5, 4.0, 4.0]


def test_directed_edges_keep_their_direction():
    edges = pl.DataFrame({"src": [1, 2, 2, 1], "dst": [2, 1, 3, 2]})
    graph, report = Graph.from_edges(edges, directed=True)
    assert rows(graph) == {1: [(2, 1.0)], 2: [(1, 1.0), (3, 1.0)], 3: []}
    assert graph.directed and graph.n_edges == 3
    # node 3 has an in-arc, so it is not isolated
    assert (report.duplicates, report.isolated) == (1, 0)


def test_unknown_nodes_are_an_error_or_dropped_and_counted():
    edges = pl.DataFrame({"src": ["a", "b", "a", "x"], "dst": ["b", "c", "z", "a"]})
    message = "dataframe: column 'dst' row 2 (0-based data row): node 'z' is not in the node list"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        Graph.from_edges(edges, nodes=["a", "b", "c"])
    graph, report = Graph.from_edges(edges, nodes=["a", "b", "c"], unknown="drop")
    assert report.unknown_dropped == 2 and graph.n_edges == 2
    with pytest.raises(ConfigError, match="unknown must be 'error' or 'drop'"):
        Graph.from_edges(edges, unknown="skip")


def test_node_table_gives_types_and_isolated_nodes(tmp_path):
    nodes = pl.DataFrame({"node": [10, 20, 30, 40], "type": ["user", "user", "item", "item"]})
    path = tmp_path / "edges.csv"
    pl.DataFrame({"from": [10, 20], "to": [30, 30]}).write_csv(path)
    graph, report = Graph.from_edges(path, src="from", dst="to", nodes=nodes)
    assert graph.node_types.to_list() == ["user", "user", "item", "item"]
    assert report.source == str(path) and report.isolated == 1
    duplicated = pl.DataFrame({"node": [10, 20, 10]})
    message = "dataframe: column 'node' row 2 (0-based data row): node 10 is listed more than once"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        Graph.from_edges(path, src="from", dst="to", nodes=duplicated)
    with pytest.raises(DataError, match="the edges hold Int64 ids but the nodes are String"):
        Graph.from_edges(pl.read_csv(path), src="from", dst="to", nodes=["a", "b"])
    # From CSV the ids are text, so text nodes that do not name them are unknown nodes.
    with pytest.raises(DataError, match="row 0 \\(0-based data row\\): node '10' is not in the node list"):
        Graph.from_edges(path, src="from", dst="to", nodes=["a", "b"])


def test_edges_from_a_sql_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    pl.DataFrame({"src": [1, 2], "dst": [2, 3], "w": [1.0, 2.0]}).write_database("edges", url)
    graph, report = Graph.from_edges(url, table="edges", weight="w")
    assert rows(graph)[2] == [(1, 1.0), (3, 2.0)]
    assert report.source.endswith("table 'edges'")


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (
            pl.DataFrame({"src": [1], "to": [2]}),
            {},
            "dataframe: missing column 'dst' (columns: src, to)",
        ),
        (
            pl.DataFrame({"src": [1, 2, None], "dst": [2, 3, 4]}),
            {},
            "dataframe: column 'src' row 2 (0-based data row): missing value",
        ),
        (
            pl.DataFrame({"src": [1.0, 2.0], "dst": [2, 3]}),
            {},
            "dataframe: column 'src' has type Float64; expected integer or string ids",
        ),
        (
            pl.DataFrame({"src": [1, 2], "dst": ["a", "b"]}),
            {},
            "dataframe: column 'src' holds Int64 ids but column 'dst' holds String",
        ),
        (
            pl.DataFrame({"src": [1, 2], "dst": [2, 3], "w": [1.0, -1.0]}),
            {"weight": "w"},
            "dataframe: column 'w' row 1 (0-based data row): weight -1.0 is not a finite number >= 0",
        ),
        (
            pl.DataFrame({"src": [1, 2], "dst": [2, 3], "w": [float("nan"), 1.0]}),
            {"weight": "w"},
            "dataframe: column 'w' row 0 (0-based data row): weight nan is not a finite number >= 0",
        ),
        (
            pl.DataFrame({"src": [1], "dst": [2], "w": ["heavy"]}),
            {"weight": "w"},
            "dataframe: column 'w' has type String; expected numbers",
        ),
        (
            pl.DataFrame({"src": [], "dst": []}, schema={"src": pl.Int64, "dst": pl.Int64}),
            {},
            "dataframe: no rows",
        ),
    ],
)
def test_bad_edge_tables_name_source_column_and_row(frame, kwargs, message):
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        Graph.from_edges(frame, **kwargs)


def karate_graphs() -> list[Graph]:
    """The weighted karate club through each constructor."""
    g = nx.karate_club_graph()
    frame = pl.DataFrame(
        [(u, v, float(w)) for u, v, w in g.edges(data="weight")], schema=["src", "dst", "weight"], orient="row"
    )
    from_edges, _ = Graph.from_edges(frame, weight="weight")
    from_networkx, _ = Graph.from_networkx(g)
    both = pl.concat([frame, frame.select(src="dst", dst="src", weight="weight")])
    data = Data(
        edge_index=torch.tensor(both.select("src", "dst").to_numpy().T.copy()),
        edge_weight=torch.tensor(both["weight"].to_numpy()),
        num_nodes=34,
    )
    from_pyg, _ = Graph.from_pyg(data)
    matrix = sp.coo_array((both["weight"].to_numpy(), (both["src"].to_numpy(), both["dst"].to_numpy())), shape=(34, 34))
    from_scipy, _ = Graph.from_scipy(matrix)
    return [from_edges, from_networkx, from_pyg, from_scipy]


def test_constructors_agree_on_the_karate_club():
    graphs = karate_graphs()
    first = graphs[0]
    assert (first.n_nodes, first.n_edges, first.directed, first.weighted) == (34, 78, False, True)
    for other in graphs[1:]:
        assert other.nodes.to_list() == first.nodes.to_list()
        assert not other.directed
        np.testing.assert_array_equal(other.indptr, first.indptr)
        np.testing.assert_array_equal(other.indices, first.indices)
        np.testing.assert_array_equal(other.weights, first.weights)


def test_pyg_keeps_isolated_nodes_and_infers_direction():
    symmetric = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), num_nodes=5)
    graph, report = Graph.from_pyg(symmetric)
    assert not graph.directed and graph.n_edges == 2 and report.duplicates == 0
    assert (graph.n_nodes, report.isolated) == (5, 2)
    one_way = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    graph, _ = Graph.from_pyg(one_way)
    assert graph.directed and graph.n_edges == 2
    graph, _ = Graph.from_pyg(one_way, directed=False)
    assert not graph.directed and graph.n_edges == 2 and graph.degree().tolist() == [1, 2, 1]


def test_pyg_errors_name_the_arc():
    outside = Data(edge_index=torch.tensor([[0, 1], [1, 7]]), num_nodes=3)
    with pytest.raises(DataError, match=r"^pyg data: arc 1 has target node 7, outside \[0, 3\)$"):
        Graph.from_pyg(outside)
    uneven = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), edge_weight=torch.tensor([1.0, 2.0]), num_nodes=2)
    with pytest.raises(DataError, match="arcs 0->1 and 1->0 weigh 1.0 and 2.0"):
        Graph.from_pyg(uneven, directed=False)
    negative = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), edge_weight=torch.tensor([1.0, -2.0]), num_nodes=2)
    message = "pyg data: column 'edge_weight' row 1 (0-based data row): weight -2.0 is not a finite number >= 0"
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        Graph.from_pyg(negative)


def test_networkx_directed_multigraph_with_isolated_and_typed_nodes():
    g = nx.MultiDiGraph()
    g.add_node("a", type="user")
    g.add_node("b", type="item")
    g.add_node("c", type="item")
    g.add_edges_from([("a", "b"), ("a", "b"), ("b", "a"), ("b", "b")])
    graph, report = Graph.from_networkx(g)
    assert graph.directed and not graph.weighted
    assert rows(graph) == {"a": [("b", 1.0)], "b": [("a", 1.0)], "c": []}
    assert graph.node_types.to_list() == ["user", "item", "item"]
    assert (report.duplicates, report.self_loops_dropped, report.isolated) == (1, 1, 1)
