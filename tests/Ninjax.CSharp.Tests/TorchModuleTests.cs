using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;
using TorchLinear = TorchSharp.Modules.Linear;

namespace Ninjax.CSharp.Tests;

/// <summary>A C# model around a TorchSharp Linear: the adapter as a submodule, a Ninjax Dense after it, and an optimizer.</summary>
public sealed class EncoderModel : Module
{
    /// <summary>The model, named <c>model</c>.</summary>
    public EncoderModel() : base("model")
    {
        Enc = Sub("enc", () => new TorchModule<TorchLinear>(() => nn.Linear(8, 4)));
        Opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(1e-2)));
    }

    /// <summary>The TorchSharp Linear as a Ninjax module.</summary>
    public TorchModule<TorchLinear> Enc { get; }

    /// <summary>The optimizer.</summary>
    public OptimizerModule Opt { get; }

    /// <summary>The encoder, then a Ninjax Dense created inline.</summary>
    public Tensor Predict(Tensor x) => Sub("head", () => new Dense(2)).Forward(nn.functional.tanh(Enc.Forward(x)));

    /// <summary>Mean squared error.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (Predict(x) - y).square().mean();

    /// <summary>One Adam step on the encoder's parameters and the head.</summary>
    public StepMetrics Train(Tensor x, Tensor y) => Opt.Minimize(Loss, [Enc.ParameterTargets, $"{Path}/head"], x, y);
}

/// <summary>TorchSharp modules inside C# models, through <see cref="TorchModule{M}"/>.</summary>
public class TorchModuleTests
{
    private static readonly Tensor X = arange(0, 24, dtype: float32).reshape(3, 8) / 10;

    [Fact]
    public void A_wrapped_TorchSharp_Linear_lives_under_its_submodule_path()
    {
        var model = new EncoderModel();
        var state = Nj.Init(model.Predict)(States.Empty, X, seed: 0);
        Assert.Equal(new[] { "model/enc/bias", "model/enc/weight", "model/head/b", "model/head/w" }, state.Keys);
        Assert.Equal(new long[] { 4, 8 }, state["model/enc/weight"].shape);
        Assert.Equal(new long[] { 4 }, state["model/enc/bias"].shape);
        Assert.Equal("model/enc", model.Enc.Path);
        Assert.Equal(new[] { "weight", "bias" }, model.Enc.ParameterNames);
        Assert.Empty(model.Enc.BufferNames);
        Assert.Equal(new[] { "model/enc/weight", "model/enc/bias" }, model.Enc.ParameterTargets);

        // The module computes with the state's tensors: x W^T + b.
        var (_, y) = Nj.Pure((Tensor x) => model.Enc.Forward(x))(state, X);
        Close(X.matmul(state["model/enc/weight"].t()) + state["model/enc/bias"], y, 1e-6, "forward");

        // Another seed, other initial weights; the same seed, the same ones.
        var other = Nj.Init(model.Predict)(States.Empty, X, seed: 1);
        Assert.False(Identical(state["model/enc/weight"], other["model/enc/weight"]));
        SameState(state, Nj.Init(model.Predict)(States.Empty, X, seed: 0), "same seed");
    }

    [Fact]
    public void A_wrapped_LSTM_returns_output_and_states_as_a_value_tuple()
    {
        var lstm = new TorchModule<TorchSharp.Modules.LSTM>(() => nn.LSTM(3, 4), "lstm");
        var x = arange(0, 30, dtype: float32).reshape(5, 2, 3) / 30;
        var state = Nj.Init((Tensor x) => lstm.Forward(x))(States.Empty, x, seed: 0);
        var (_, (output, h, c)) = Nj.Pure((Tensor x) => lstm.ForwardLstm(x))(state, x);
        Assert.Equal(new long[] { 5, 2, 4 }, output.shape);
        Assert.Equal(new long[] { 1, 2, 4 }, h.shape);
        Assert.Equal(new long[] { 1, 2, 4 }, c.shape);
        // The last step's output is the final hidden state.
        Close(output[4], h[0], 1e-6, "h_n is the last output");
    }

    [Fact]
    public void Gradients_reach_the_wrapped_modules_parameters()
    {
        var model = new EncoderModel();
        var state = Nj.Init(model.Predict)(States.Empty, X, seed: 0);
        // d/dW sum(x W^T + b) is the column sums of x in every row; d/db is the batch size.
        var (_, (loss, ps, grads)) = Nj.Pure((Tensor x) => Nj.Grad(() => model.Enc.Forward(x).sum(), model.Enc.ParameterTargets))(state, X);
        Assert.Equal(new[] { "model/enc/bias", "model/enc/weight" }, grads.Keys);
        SameTensor(state["model/enc/weight"], ps["model/enc/weight"], "the differentiated parameter is the state's");
        Close(X.sum(0L, keepdim: false).expand(4, 8), grads["model/enc/weight"], 1e-6, "weight gradient");
        Close(ones(4) * 3, grads["model/enc/bias"], 1e-6, "bias gradient");
        Close((X.matmul(state["model/enc/weight"].t()) + state["model/enc/bias"]).sum(), loss, 1e-5, "loss");
    }

    [Fact]
    public void An_optimizer_trains_the_wrapped_module_and_keeps_its_moments_beside_the_heads()
    {
        var model = new EncoderModel();
        var y = ones(3, 2);
        var state = Nj.Init(model.Train)(States.Empty, X, y, seed: 0);
        Assert.Contains("model/opt/mu/model/enc/weight", state.Keys);
        Assert.Contains("model/opt/nu/model/head/w", state.Keys);
        var train = Nj.Pure(model.Train);
        var losses = new List<float>();
        for (var i = 0; i < 20; i++)
        {
            (state, var m) = train(state, X, y);
            losses.Add(m.Loss.item<float>());
        }
        Assert.True(losses[^1] < losses[0] * 0.5f, string.Join(", ", losses));
        Assert.Equal(20L, state["model/opt/count"].item<long>());
    }

    [Fact]
    public void A_wrong_input_names_the_adapter_and_the_shape()
    {
        var model = new EncoderModel();
        var state = Nj.Init(model.Predict)(States.Empty, X, seed: 0);
        var e = Raises<ArgumentException>(() => Nj.Pure((Tensor x) => model.Enc.Forward(x))(state, ones(3, 5)));
        Assert.Contains("model/enc", e.Message);
        Assert.Contains("[3, 5]", e.Message);
        var native = Raises<NotSupportedException>(() => new TorchModule<TorchSharp.Modules.GRU>(() => nn.GRU(4, 4), "gru"));
        Assert.Contains("GRU", native.Message);
    }
}
