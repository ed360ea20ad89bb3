using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Two branches, each with its own entry.</summary>
public sealed class CsBranches : Module
{
    /// <summary>A top-level module.</summary>
    public CsBranches(string name = "br") : base(name) { }

    /// <summary>Adds one to the left entry, or subtracts one from the right entry.</summary>
    public Tensor Run(bool useLeft) => Nj.Cond(useLeft,
        x =>
        {
            var left = Get("left", () => ones(2));
            Put("left", left + 1);
            return x + left;
        },
        x =>
        {
            var right = Get("right", () => zeros(2));
            Put("right", right - 1);
            return x - right;
        },
        ones(2));
}

/// <summary>A recurrent model: a cell scanned over the time axis, and the same loop written out.</summary>
public sealed class CsSequenceModel : Module
{
    private readonly Dense readout;

    /// <summary>A top-level model with <paramref name="hidden"/> units.</summary>
    public CsSequenceModel(int hidden, string name = "seq") : base(name)
    {
        Hidden = hidden;
        readout = Sub("out", () => new Dense(1));
    }

    /// <summary>The hidden size.</summary>
    public int Hidden { get; }

    /// <summary>One step of the cell: the next hidden state, twice (carry and output).</summary>
    public (Tensor Carry, Tensor Output) Step(Tensor h, Tensor x)
    {
        var wx = Get("wx", () => Init.GlorotUniform(x.shape[^1], Hidden));
        var wh = Get("wh", () => Init.GlorotUniform(Hidden, Hidden));
        var next = tanh(x.matmul(wx) + h.matmul(wh) + Get("b", () => zeros(Hidden)));
        return (next, next);
    }

    /// <summary>The loss through Nj.Scan over axis 1 of [batch, time, features].</summary>
    public Tensor Loss(Tensor xs, Tensor y)
    {
        var (h, outputs) = Nj.Scan(Step, zeros(xs.shape[0], Hidden), xs, axis: 1);
        Assert.Equal(new[] { xs.shape[0], xs.shape[1], Hidden }, outputs.shape);
        return (readout.Forward(h) - y).square().mean();
    }

    /// <summary>The same loss with the loop written out.</summary>
    public Tensor LossUnrolled(Tensor xs, Tensor y)
    {
        var h = zeros(xs.shape[0], Hidden);
        for (var t = 0; t < xs.shape[1]; t++) h = Step(h, xs.select(1, t)).Carry;
        return (readout.Forward(h) - y).square().mean();
    }
}

/// <summary>Control flow and gradient checkpointing from C#: <c>Nj.Cond</c>, <c>Nj.Scan</c>, <c>Nj.WhileLoop</c>,
/// <c>Nj.Checkpoint</c>, with the semantics the F# tests check for the F# forms.</summary>
public class ControlFlowTests
{
    private static (Tensor Xs, Tensor Y) Sequences()
    {
        using var g = new Generator(5);
        var xs = randn(new long[] { 16, 6, 3 }, generator: g);
        return (xs, xs.sum(new long[] { 1, 2 }).unsqueeze(1).tanh());
    }

    [Fact]
    public void Cond_creates_both_branches_at_init_and_applies_only_the_chosen_one()
    {
        var m = new CsBranches();
        var state = Nj.Init((bool left) => m.Run(left))(States.Empty, true, seed: 0);
        Assert.Equal(new[] { "br/left", "br/right" }, state.Keys);
        var run = Nj.Pure((bool left) => m.Run(left));
        var (left, outLeft) = run(state, true, seed: 1);
        SameTensor(full(2, 2f), outLeft, "left output");
        SameTensor(full(2, 2f), left["br/left"], "left written");
        SameTensor(zeros(2), left["br/right"], "right untouched");
        var (right, _) = run(state, false, seed: 1);
        SameTensor(full(2, -1f), right["br/right"], "right written");
        SameTensor(ones(2), right["br/left"], "left untouched");
    }

    [Fact]
    public void Cond_without_an_operand_and_with_actions()
    {
        var counter = new Counter("cc");
        var state = Nj.Init(() => Nj.Cond(true, () => counter.Increment(), () => zeros(1)))(States.Empty);
        var (after, output) = Nj.Pure(() => Nj.Cond(false, () => counter.Increment(), () => zeros(1)))(state);
        SameTensor(zeros(1), output, "the false branch ran");
        SameTensor(zeros(1), after["cc/count"], "its writes only");
        var afterAction = Nj.Pure(() => Nj.Cond(true, () => { counter.Increment(); }, () => { }))(state);
        SameTensor(ones(1), afterAction["cc/count"], "the true action ran");
    }

    [Fact]
    public void Scan_threads_the_state_and_its_gradients_match_the_unrolled_loop()
    {
        var (xs, y) = Sequences();
        var model = new CsSequenceModel(8);
        var state = Nj.Init(model.Loss)(States.Empty, xs, y, seed: 0);
        var (_, viaScan) = Nj.Pure(() => Nj.Grad(model.Loss, model)(xs, y))(state);
        var (_, unrolled) = Nj.Pure(() => Nj.Grad(model.LossUnrolled, model)(xs, y))(state);
        Close(unrolled.Loss, viaScan.Loss, 1e-6, "loss");
        foreach (var key in unrolled.Grads.Keys) Close(unrolled.Grads[key], viaScan.Grads[key], 1e-5, $"gradient of {key}");
    }

    [Fact]
    public void Scan_errors_name_the_axis_and_the_shape()
    {
        var e = Raises<ArgumentOutOfRangeException>(() =>
            Nj.Pure(() => Nj.Scan((int c, Tensor x) => (c + 1, x), 0, ones(2, 2), axis: 2))(States.Empty));
        Assert.Contains("axis 2", e.Message);
        Assert.Contains("[2, 2]", e.Message);
        var (_, (count, ys)) = Nj.Pure(() => Nj.Scan((int c, Tensor x) => (c + 1, x * 2), 0, ones(4, 3)))(States.Empty);
        Assert.Equal(4, count);
        Assert.Equal(new long[] { 4, 3 }, ys.shape);
    }

    [Fact]
    public void WhileLoop_threads_a_carry_and_the_state()
    {
        var counter = new Counter("wl");
        var loop = Nj.Pure(() => Nj.WhileLoop(n => n < 5, n =>
        {
            counter.Increment();
            return n + 1;
        }, 0));
        // While creating, the body runs once with its writes dropped, so its entry exists even when it never runs.
        var state = Nj.Init(() => Nj.WhileLoop(n => false, n => { counter.Increment(); return n; }, 0))(States.Empty);
        Assert.Equal(new[] { "wl/count" }, state.Keys);
        SameTensor(zeros(1), state["wl/count"], "created, not counted");
        var (after, n) = loop(state);
        Assert.Equal(5, n);
        SameTensor(full(1, 5f), after["wl/count"], "five increments");
    }

    [Fact]
    public void Checkpoint_gives_the_gradients_of_the_plain_call()
    {
        var block = new Dense(16, name: "block");
        var head = new Dense(1, name: "head");
        using var g = new Generator(3);
        var x = randn(new long[] { 8, 4 }, generator: g);
        Tensor Loss(bool checkpointed)
        {
            var h = checkpointed ? Nj.Checkpoint(t => tanh(block.Forward(t)), x) : tanh(block.Forward(x));
            return head.Forward(h).square().mean();
        }
        var state = Nj.Init(() => Loss(false))(States.Empty, seed: 0);
        var (_, plain) = Nj.Pure(() => Nj.Grad(() => Loss(false), block, head))(state);
        var (_, checkpointed) = Nj.Pure(() => Nj.Grad(() => Loss(true), block, head))(state);
        foreach (var key in plain.Grads.Keys) Close(plain.Grads[key], checkpointed.Grads[key], 1e-6, $"gradient of {key}");
        // Several inputs, as tensors or as a list.
        var (_, sum) = Nj.Pure(() => Nj.Checkpoint((a, b) => a + b, ones(2), ones(2)))(state);
        SameTensor(full(2, 2f), sum, "two inputs");
        var (_, three) = Nj.Pure(() => Nj.Checkpoint(xs => xs[0] + xs[1] + xs[2], [ones(2), ones(2), ones(2)]))(state);
        SameTensor(full(2, 3f), three, "a list of inputs");
    }
}
