using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Optimizer-state-like slots: a positional record holding an array, a dictionary and a count.</summary>
public sealed record Slots(Tensor[] Mu, Dictionary<string, Tensor> Nu, Tensor Count);

/// <summary>A class whose constructor takes all its public properties: stored like a record.</summary>
public sealed class Pair
{
    /// <summary>A pair.</summary>
    public Pair(Tensor left, Tensor right) { Left = left; Right = right; }

    /// <summary>The left tensor.</summary>
    public Tensor Left { get; }

    /// <summary>The right tensor.</summary>
    public Tensor Right { get; }
}

/// <summary>A class with a property its constructor does not take: it cannot be rebuilt, so it is refused.</summary>
public sealed class Incomplete
{
    /// <summary>Only the weight goes through the constructor.</summary>
    public Incomplete(Tensor weight) => Weight = weight;

    /// <summary>The weight.</summary>
    public Tensor Weight { get; }

    /// <summary>Set after construction.</summary>
    public Tensor? Extra { get; set; }
}

/// <summary>A C# module that keeps its slots in a Tree and advances them.</summary>
public sealed class SlotKeeper : Module
{
    private readonly Tree<Slots> slots;

    /// <summary>A keeper with its slots under <c>name/slots</c>.</summary>
    public SlotKeeper(string name) : base(name) =>
        slots = Sub("slots", () => new Tree<Slots>(() => new Slots(
            new[] { zeros(2), zeros(3) },
            new Dictionary<string, Tensor> { ["a"] = ones(2) },
            zeros(Array.Empty<long>(), dtype: int64))));

    /// <summary>One step: every moment plus one, the count plus one.</summary>
    public Tensor Step()
    {
        var s = slots.Read();
        var next = new Slots(s.Mu.Select(m => m + 1).ToArray(), s.Nu.ToDictionary(kv => kv.Key, kv => kv.Value * 2), s.Count + 1);
        slots.Write(next);
        return next.Count;
    }

    /// <summary>Writes slots with another structure (one moment fewer).</summary>
    public void WriteOther() => slots.Write(new Slots(new[] { zeros(2) }, new Dictionary<string, Tensor> { ["a"] = ones(2) }, zeros(Array.Empty<long>(), dtype: int64)));
}

/// <summary>ninjax's Tree, flatten and unflatten from C#, and the gradient edge cases of ninjax 3.6.</summary>
public class TreeTests
{
    [Fact]
    public void A_Tree_keeps_a_record_as_entries_named_by_property_position_and_key()
    {
        var keeper = new SlotKeeper("keeper");
        var state = Nj.Init(keeper.Step)(States.Empty, seed: 0);
        Assert.Equal(new[] { "keeper/slots/Count", "keeper/slots/Mu/0", "keeper/slots/Mu/1", "keeper/slots/Nu/a" }, state.Keys);
        var step = Nj.Pure(keeper.Step);
        (state, _) = step(state);
        (state, var count) = step(state);
        SameTensor(tensor(2L), count, "count");
        SameTensor(full(3, 2f), state["keeper/slots/Mu/1"], "moments advanced twice");
        SameTensor(full(2, 4f), state["keeper/slots/Nu/a"], "dictionary entries advanced twice");
        var error = Raises<ArgumentException>(() => Nj.Pure(keeper.WriteOther)(state));
        Assert.Contains("'Mu'", error.Message);
        Assert.Contains("keep the structure", error.Message);
    }

    [Fact]
    public void Flatten_and_unflatten_round_trip_records_classes_and_tuples()
    {
        var (entries, structure) = Trees.Flatten((Vec(1), new Pair(Vec(2), Vec(3))));
        Assert.Equal(new[] { "0", "1/Left", "1/Right" }, entries.Keys);
        Assert.Equal(entries.Keys, structure.Keys.OrderBy(k => k, StringComparer.Ordinal));
        var back = Trees.Unflatten<(Tensor, Pair)>(structure, entries);
        SameTensor(Vec(3), back.Item2.Right, "class part");
        var list = Trees.Flatten(new List<Tensor> { Vec(1), Vec(2) });
        Assert.Equal(new[] { "0", "1" }, list.Entries.Keys);
        SameTensor(Vec(2), Trees.Unflatten<List<Tensor>>(list.Structure, list.Entries)[1], "list part");
    }

    [Fact]
    public void What_cannot_be_stored_is_named()
    {
        var error = Raises<ArgumentException>(() => Trees.Flatten(new Incomplete(Vec(1))));
        Assert.Contains("Incomplete", error.Message);
        error = Raises<ArgumentException>(() => Trees.Flatten((Vec(1), 3)));
        Assert.Contains("'1'", error.Message);
        Assert.Contains("Int32", error.Message);
    }

    [Fact]
    public void GradArgs_differentiates_arguments_by_position()
    {
        var x = Vec(1, 2);
        var y = Vec(3, 4);
        var (_, result) = Nj.Pure(() => Nj.GradArgs((Tensor a, Tensor b) => (a * b.square()).sum(), 0, 1)(x, y))(States.Empty);
        Assert.Same(x, result.Args[0]);
        SameTensor(Vec(9, 16), result.Grads[0], "d/da = b^2");
        SameTensor(Vec(6, 16), result.Grads[1], "d/db = 2ab");
        var (_, single) = Nj.Pure(() => Nj.GradArgs(a => a.square().sum(), 0)(x))(States.Empty);
        SameTensor(Vec(2, 4), single.Grads[0], "one argument");
        var error = Raises<ArgumentOutOfRangeException>(() => Nj.Pure(() => Nj.GradArgs((Tensor a, Tensor b) => a.sum(), 2)(x, y))(States.Empty));
        Assert.Contains("position 2", error.Message);
    }

    [Fact]
    public void A_loss_that_does_not_depend_on_the_targets_has_zero_gradients()
    {
        var model = new Affine("constant");
        var state = Nj.Init(model.Loss)(States.Empty, Vec(1, 2).reshape(1, 2), Vec(1).reshape(1, 1));
        var (_, result) = Nj.Pure(() => Nj.Grad(() => model.Forward(Vec(1, 2).reshape(1, 2)).detach().sum(), model))(state);
        SameTensor(zeros(2, 1), result.Grads["constant/w"], "zero gradient");
    }

    [Fact]
    public void Params_are_the_targets_as_the_loss_left_them()
    {
        var counter = new Counter("c");
        var state = Nj.Init(counter.Increment)(States.Empty);
        // The loss increments the counter and returns a constant: params hold the new count, grads are zero.
        var (_, result) = Nj.Pure(() => Nj.Grad(() => { counter.Increment(); return tensor(0f); }, "c/count"))(state);
        SameTensor(ones(1), result.Params["c/count"], "the count after the loss's write");
        SameTensor(zeros(1), result.Grads["c/count"], "zero gradient");
    }
}
