"""The memory planner: lifetimes, in-place reuse, concat zero-copy, alignment, the bounds, the
checker (which must catch a bad plan and accept the deliberate aliases), and the plan a bundle
carries."""
import math

import numpy as np
import pytest

from edgebrew.bundle import Bundle
from edgebrew.optimizer import check_plan, plan_memory
from edgebrew.optimizer.memory_planner import ALIGN, PlanError, lifetimes, plan_from_offsets
from opt_graphs import build, node


def chain():
    """x -> conv -> ReLU -> pool -> BatchNorm -> Scale(2 inputs) -> y"""
    return build({"x": (1, 3, 8, 8)}, [
        node("c", "Convolution", ["x"], ["a"], ["c.w", "c.b"], num_output=4, kernel=(3, 3)),
        node("r", "ReLU", ["a"], ["b"]),
        node("p", "Pooling", ["b"], ["d"], method="MAX", kernel=(2, 2), stride=(2, 2)),
        node("bn", "BatchNorm", ["d"], ["e"], ["m", "v", "f"]),
        node("sc", "Scale", ["e"], ["y"], ["s"]),
    ], ["y"])


def test_lifetimes():
    g = chain()
    life = lifetimes(g)
    assert life["x"] == (0, 1) and life["a"] == (1, 2) and life["y"] == (5, 6)


def test_inplace_outputs_take_the_dying_input():
    g = chain()
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.offsets["b"] == plan.offsets["a"]            # ReLU in place
    assert plan.offsets["e"] == plan.offsets["d"] == plan.offsets["y"]
    assert plan.inplace_ops == ["r", "bn", "sc"]
    assert plan.aliases["a"] == ("b", 0)
    assert all(o % ALIGN == 0 for o in plan.offsets.values())
    # The most live at once: the conv's input (768 B) and output (576 B); aliased tensors
    # count once.
    assert plan.lower_bound_bytes == plan.arena_bytes == 768 + 576
    assert plan.naive_bytes == 768 + 2 * 576 + 3 * 192
    plain = plan_memory(g, inplace=False, zero_copy_concat=False)
    check_plan(g, plain)
    assert not plain.aliases and len(set(plain.offsets.values())) >= 2


def test_no_inplace_over_a_graph_input_or_a_tensor_read_later():
    g = build({"x": (1, 4, 4, 4)}, [
        node("r", "ReLU", ["x"], ["a"]),                        # x is a graph input
        node("s", "Sigmoid", ["a"], ["b"]),                     # a is read again below
        node("e", "Eltwise", ["b", "a"], ["y"]),
    ], ["y"])
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.offsets["a"] != plan.offsets["x"]
    assert plan.offsets["b"] != plan.offsets["a"]
    assert plan.offsets["y"] in (plan.offsets["a"], plan.offsets["b"])   # Eltwise: any input


def inception(batch=1, channels=(16, 32, 16), extra_reader=False):
    x = {"x": (batch, 8, 4, 4)}
    nodes = [node(f"b{i}", "Convolution", ["x"], [f"t{i}"], [f"b{i}.w", f"b{i}.b"],
                  num_output=c, kernel=(1, 1)) for i, c in enumerate(channels)]
    nodes += [node(f"r{i}", "ReLU", [f"t{i}"], [f"u{i}"]) for i in range(len(channels))]
    nodes.append(node("cat", "Concat", [f"u{i}" for i in range(len(channels))], ["cat"]))
    nodes.append(node("pool", "Pooling", ["cat"], ["y"], method="AVE", global_pooling=True))
    outs = ["y"]
    if extra_reader:
        nodes.append(node("late", "TanH", ["u0"], ["z"]))
        outs.append("z")
    return build(x, nodes, outs)


def test_concat_zero_copy():
    g = inception()
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.zero_copy_concats == ["cat"]
    base, pos = plan.offsets["cat"], 0
    for i, c in enumerate((16, 32, 16)):
        assert plan.offsets[f"u{i}"] == base + pos            # written straight into its slice
        assert plan.offsets[f"t{i}"] == base + pos            # ... by the in-place ReLU's input
        pos += c * 16 * 4
    # Each producer's output is live while the others are computed: the arena is the concat
    # output plus the input x; the lower bound agrees.
    assert plan.arena_bytes == plan.lower_bound_bytes == 64 * 16 * 4 + 8 * 16 * 4


def unaligned():
    """The second input would start 3 * 9 * 4 = 108 bytes into the output."""
    return build({"x": (1, 8, 3, 3)}, [
        node("a", "Convolution", ["x"], ["p"], ["a.w", "a.b"], num_output=3, kernel=(1, 1)),
        node("b", "Convolution", ["x"], ["q"], ["b.w", "b.b"], num_output=3, kernel=(1, 1)),
        node("cat", "Concat", ["p", "q"], ["y"])], ["y"])


@pytest.mark.parametrize("make, why", [
    (lambda: inception(batch=2), "batch 2"),
    (lambda: inception(extra_reader=True), "read after the Concat"),
    (unaligned, "not a multiple of 64"),
], ids=["batch2", "read-later", "unaligned"])
def test_concat_that_must_copy(make, why):
    g = make()
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.zero_copy_concats == []
    assert why in plan.concat_copies["cat"]
    assert not plan_memory(g, zero_copy_concat=False).concat_copies


def test_concat_along_axis_0_and_nested_concats():
    g = build({"x": (1, 4, 4, 4)}, [
        node("a", "ReLU", ["x"], ["a"]), node("b", "Sigmoid", ["x"], ["b"]),
        node("c1", "Concat", ["a", "b"], ["ab"], axis=0),
        node("t", "TanH", ["x"], ["t"]),
        node("t2", "Concat", ["t", "t"], ["tt"], axis=0),            # an input twice: copies
        node("c2", "Concat", ["ab", "tt"], ["y"], axis=0)], ["y"])
    plan = plan_memory(g)
    check_plan(g, plan)
    assert plan.zero_copy_concats == ["c1", "c2"]
    assert plan.offsets["a"] == plan.offsets["y"]
    assert plan.offsets["tt"] == plan.offsets["y"] + 2 * 64 * 4


def test_check_plan_catches_overlaps_and_misalignment():
    g = inception(extra_reader=True)
    plan = plan_memory(g)
    check_plan(g, plan)
    bad = plan_memory(g)
    bad.offsets["u1"] = bad.offsets["u0"]                     # both live at the Concat
    with pytest.raises(PlanError, match="overlap"):
        check_plan(g, bad)
    bad = plan_memory(g)
    bad.offsets["t0"] += 4
    with pytest.raises(PlanError, match="aligned"):
        check_plan(g, bad)
    bad = plan_memory(g)
    bad.arena_bytes = 64
    with pytest.raises(PlanError, match="past"):
        check_plan(g, bad)
    # An in-place alias is legitimate only where the input dies at that op.
    g = build({"x": (1, 4, 4, 4)}, [node("r", "ReLU", ["x"], ["a"]),
                                    node("s", "Sigmoid", ["a"], ["b"]),
                                    node("e", "Eltwise", ["a", "b"], ["y"])], ["y"])
    bad = plan_memory(g)
    bad.offsets["b"] = bad.offsets["a"]
    with pytest.raises(PlanError, match="'a'.*'b'|'b'.*'a'"):
        check_plan(g, bad)


def test_bundle_plan_round_trip_recognises_the_aliases():
    g = inception()
    plan = plan_memory(g)
    back = Bundle.from_bytes(Bundle(g, plan=plan).to_bytes())
    assert back.plan.offsets == plan.offsets and back.plan.arena_bytes == plan.arena_bytes
    assert back.plan.zero_copy_concats == ["cat"]
    assert back.plan.lower_bound_bytes == plan.lower_bound_bytes
    check_plan(back.graph, back.plan)
    again = plan_from_offsets(g, plan.offsets, plan.arena_bytes)
    assert again.aliases == plan.aliases
    # A bundle made without a plan gives every activation its own bytes.
    assert not Bundle(g).plan.aliases
    sizes = {t: math.prod(s) * 4 for t, s in g.shapes.items() if t in plan.sizes}
    assert Bundle(g).plan.sizes == sizes
    np.testing.assert_equal(sorted(plan.sizes), sorted(sizes))
