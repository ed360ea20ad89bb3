using System.Text.RegularExpressions;
using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A module with submodules built in its constructor and inline, as C# users write them.</summary>
public sealed class Tree : Module
{
    /// <summary>A tree named <paramref name="name"/> with a left and a right leaf.</summary>
    public Tree(string name = "tree") : base(name)
    {
        Left = Sub("left", () => new Variable(() => ones(2)));
        Right = Sub("right", () => new Variable(() => ones(3)));
    }

    /// <summary>Built in the constructor.</summary>
    public Variable Left { get; }

    /// <summary>Built in the constructor.</summary>
    public Variable Right { get; }

    /// <summary>Built inline on first use.</summary>
    public Counter Inline => Sub("inline", () => new Counter());

    /// <summary>Reads both leaves and bumps the inline counter.</summary>
    public Tensor Run() => Left.Read().sum() + Right.Read().sum() + Inline.Increment().sum();
}

/// <summary>Creation, Get/Put/GetM/PutM, Values and scoping from C#.</summary>
public class ModuleTests
{
    [Fact]
    public void Init_creates_entries_under_module_paths_and_keeps_existing_ones()
    {
        var tree = new Tree("t1");
        Assert.Equal("t1", tree.Path);
        Assert.Equal("t1/left", tree.Left.Path);
        Assert.Equal("inline", tree.Inline.Name);
        Assert.Equal("t1/inline", tree.Inline.Path);
        Assert.Same(tree.Inline, tree.Inline);

        var state = Nj.Init(tree.Run)(States.Empty, seed: 0);
        Assert.Equal(new[] { "t1/inline/count", "t1/left/value", "t1/right/value" }, state.Keys);
        SameTensor(zeros(1), state["t1/inline/count"], "init drops the write to an entry it created");

        var again = Nj.Init(tree.Run)(state.With("t1/left/value", full(2, 7f)));
        SameTensor(full(2, 7f), again["t1/left/value"], "init keeps an existing entry");
    }

    [Fact]
    public void A_counter_written_with_Put_counts_one_two_three()
    {
        var counter = new Counter("counter");
        var count = Nj.Pure(counter.Increment);
        var state = Nj.Init(counter.Increment)(States.Empty);
        var (s1, c1) = count(state);
        var (s2, c2) = count(s1);
        var (_, c3) = count(s2);
        Assert.Equal(new[] { 1f, 2f, 3f }, new[] { c1, c2, c3 }.Select(c => c.item<float>()));
        Assert.Equal(0f, state["counter/count"].item<float>());
    }

    [Fact]
    public void GetM_filters_relative_keys_and_PutM_writes_absolute_ones()
    {
        var tree = new Tree("t2");
        var state = Nj.Init(tree.Run)(States.Empty);
        var (after, got) = Nj.Pure(() =>
        {
            var leaves = tree.GetM("(left|right)/");
            tree.PutM(leaves.Map((_, t) => t * 10));
            return (leaves, tree.GetM(), tree.Values);
        })(state);
        var (leaves, all, values) = got;
        Assert.Equal(new[] { "t2/left/value", "t2/right/value" }, leaves.Keys);
        Assert.Equal(new[] { "t2/inline/count", "t2/left/value", "t2/right/value" }, all.Keys);
        Assert.Equal(new[] { "inline/count", "left/value", "right/value" }, values.Keys);
        SameTensor(full(2, 10f), after["t2/left/value"], "PutM stored");
        SameTensor(full(3, 10f), values["right/value"], "Values sees the write");
        SameTensor(ones(2), state["t2/left/value"], "the input state is unchanged");
    }

    [Fact]
    public void Put_with_a_dictionary_Value_Read_and_Write()
    {
        var m = new Counter("m");
        var (state, output) = Nj.Pure(() =>
        {
            var v = m.Value("v", () => ones(2));
            m.Put(new Dictionary<string, Tensor> { ["m/u"] = full(2, 3f) });
            m.Write("v", v * 4);
            return m.Read("v") + m.Get("u");
        })(States.Empty, create: true);
        SameTensor(full(2, 7f), output, "4 + 3");
        Assert.Equal(new[] { "m/u", "m/v" }, state.Keys);
    }

    [Fact]
    public void Nj_Scope_Get_Put_and_Read_resolve_relative_to_the_scope()
    {
        var (state, output) = Nj.Pure(() =>
        {
            Nj.Scope("outer", () =>
            {
                Nj.Get("a", () => ones(1));
                Nj.Scope("inner", () => Nj.Put("b", full(1, 2f)));
            });
            return Nj.Scope("outer", () => Nj.Read("a") + Nj.Read("inner/b") + (Nj.Creating ? 100 : 0));
        })(States.Empty, create: true);
        Assert.Equal(new[] { "outer/a", "outer/inner/b" }, state.Keys);
        SameTensor(full(1, 103f), output, "1 + 2 + 100 while creating");

        var (_, current) = Nj.Pure(() => (Nj.Creating, Nj.State.Keys.ToArray()))(state);
        Assert.False(current.Creating);
        Assert.Equal(state.Keys, current.Item2);
    }

    [Fact]
    public void Regex_gradient_targets_and_state_helpers_compose()
    {
        var tree = new Tree("t3");
        var state = Nj.Init(tree.Run)(States.Empty);
        var (_, grads) = Nj.Pure(() => Nj.Grad(() => tree.Left.Read().sum() * 2 + tree.Right.Read().sum(), new Regex("^t3/(left|right)/value$")).Grads)(state);
        SameTensor(full(2, 2f), grads["t3/left/value"], "d/dleft");
        SameTensor(ones(3), grads["t3/right/value"], "d/dright");
        Assert.Equal(new[] { "t3/left/value" }, state.Under("t3/left").Keys);
        Assert.Equal(new[] { "t3/right/value" }, state.Filter((k, t) => t.numel() == 3).Keys);
        Assert.Equal(2, state.Without("t3/inline/count").Count);
        SameTensor(full(2, 5f), state.Merge(States.From(("t3/left/value", full(2, 5f))))["t3/left/value"], "merge: right wins");
    }
}
