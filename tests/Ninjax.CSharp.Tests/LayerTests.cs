using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A C# module that keeps a moving average of its input as a buffer, declared in its constructor.</summary>
public sealed class AveragedScale : Module
{
    /// <summary>The module; the average is declared a buffer before any call.</summary>
    public AveragedScale(string? name = null) : base(name) => DeclareBuffers("average");

    /// <summary>Scales the input by a trained factor and updates the average of the input.</summary>
    public Tensor Forward(Tensor x)
    {
        var average = Get("average", () => zeros(x.size(1)));
        Put("average", average * 0.9 + x.detach().mean([0]) * 0.1);
        return x * Get("scale", () => ones(x.size(1)));
    }
}

/// <summary>Ninjax's BatchNormalization, Embed and dropout, and the parameter API, from C#.</summary>
public class LayerTests
{
    [Fact]
    public void BatchNormalization_matches_TorchSharps_BatchNorm1d_in_training_and_eval()
    {
        var bn = new BatchNormalization(momentum: 0.2, name: "bn");
        var plain = nn.BatchNorm1d(3, momentum: 0.2);
        var x = randn([8, 3], generator: new Generator(1));
        var state = Nj.Init((Tensor x) => bn.Forward(x, true))(States.Empty, x, seed: 0);
        Assert.Equal(new[] { "bn/mean", "bn/offset", "bn/scale", "bn/var" }, state.Keys);
        Assert.Equal(new[] { "bn/offset", "bn/scale" }, bn.ParameterKeys(state));
        Assert.Equal(EntryKind.Buffer, bn.EntryKinds(state)["bn/var"]);

        var (trained, y) = Nj.Pure((Tensor x) => bn.Forward(x, true))(state, x);
        SameTensor(plain.call(x), y, "training output");
        SameTensor(plain.running_mean!, trained["bn/mean"], "running mean");
        SameTensor(plain.running_var!, trained["bn/var"], "running variance");

        plain.eval();
        var (after, z) = Nj.Pure((Tensor x) => bn.Forward(x, false))(trained, x);
        SameTensor(plain.call(x), z, "eval output");
        Assert.Same(trained["bn/mean"], after["bn/mean"]);
    }

    [Fact]
    public void Embed_takes_an_optional_padding_index_and_dropout_draws_from_the_calls_seed()
    {
        var embed = new Embed(6, 2, paddingIndex: 0, name: "emb");
        var indices = tensor(new long[] { 0, 3, 5 });
        var state = Nj.Init((Tensor i) => embed.Forward(i))(States.Empty, indices, seed: 0);
        Assert.Equal(0, embed.PaddingIndex);
        SameTensor(zeros(2), state["emb/embedding"][0], "the padding row starts at zero");
        var (_, rows) = Nj.Pure((Tensor i) => embed.Forward(i))(state, indices);
        SameTensor(state["emb/embedding"].index_select(0, indices), rows, "rows");
        Assert.Null(new Embed(6, 2, name: "plain").PaddingIndex);

        var x = ones(100);
        var drop = Nj.Pure((Tensor x) => Ops.Dropout(0.5, true, x));
        var (_, a) = drop(States.Empty, x, seed: 1);
        var (_, b) = drop(States.Empty, x, seed: 1);
        var (_, c) = drop(States.Empty, x, seed: 2);
        SameTensor(a, b, "same seed, same mask");
        Assert.False(Identical(a, c), "another seed, another mask");
        var error = Raises<InvalidOperationException>(() => Nj.Pure((Tensor x) => Ops.Dropout(0.5, true, x))(States.Empty, x));
        Assert.Contains("seed", error.Message);
    }

    [Fact]
    public void A_modules_parameters_leave_out_what_it_declares_a_buffer()
    {
        var module = new AveragedScale("avg");
        var x = randn([4, 3], generator: new Generator(2));
        // Built by hand, as a loaded checkpoint: the constructor's declaration already holds.
        var loaded = States.From(("avg/average", zeros(3)), ("avg/scale", ones(3)));
        Assert.Equal(new[] { "avg/scale" }, module.ParameterKeys(loaded));
        var (after, (loss, ps, grads)) = Nj.Pure((Tensor x) => Nj.Grad(() => module.Forward(x).sum(), module))(loaded, x);
        Assert.Equal(new[] { "avg/scale" }, grads.Keys);
        Close(x.mean([0]) * 0.1, after["avg/average"], 1e-6, "the average moved");
        var (_, parameters) = Nj.Pure(() => module.Parameters())(loaded);
        Assert.Equal(new[] { "avg/scale" }, parameters.Keys);
        Assert.Same(loaded["avg/scale"], module.Parameters(loaded)["avg/scale"]);

        // A module holding only a buffer is no target; the message speaks C#.
        var onlyBuffer = States.From(("avg/average", zeros(3)));
        var error = Raises<ArgumentException>(() => Nj.Pure(() => Nj.Grad(() => module.Forward(ones(2, 3)).sum(), module))(onlyBuffer));
        Assert.Contains("holds no trainable parameters", error.Message);
        Assert.Contains("buffers (avg/average)", error.Message);
        Assert.Contains("its key as a string (\"avg/...\")", error.Message);
    }
}

/// <summary>Ninjax's max pooling from C#: TorchSharp's values and gradients, errors in C# names.</summary>
public class MaxPoolTests
{
    [Fact]
    public void MaxPool2d_gives_max_pool2ds_values_and_gradients_and_names_a_bad_window_in_CSharp()
    {
        // Rounded and rectified: most windows hold several equal maxima.
        var x = (randn([4, 8, 6, 6], generator: new Generator(3)) * 2).round().relu();
        var r = randn([4, 8, 3, 3], generator: new Generator(4));
        var ours = x.detach().requires_grad_(true);
        var theirs = x.detach().requires_grad_(true);
        var pooled = Ops.MaxPool2d(2, ours);
        var expected = nn.functional.max_pool2d(theirs, [2, 2]);
        SameTensor(expected, pooled, "values");
        (pooled * r).sum().backward();
        (expected * r).sum().backward();
        SameTensor(theirs.grad!, ours.grad!, "gradients reach the same elements");

        var (_, inCall) = Nj.Pure((Tensor x) => Ops.MaxPool2d(2, x))(States.Empty, x);
        SameTensor(expected, inCall, "inside a purified call");

        var error = Raises<ArgumentException>(() => Ops.MaxPool2d(7, x));
        Assert.Contains("Ops.MaxPool2d(7)", error.Message);
        Assert.Contains("[4, 8, 6, 6]", error.Message);
    }
}
