using Ninjax.CSharp.Tests.FSharpModels;
using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A C# model made of F# layers: one built in the constructor, one inline.</summary>
public sealed class Mlp : Module
{
    private readonly Dense hidden;

    /// <summary>An MLP named <paramref name="name"/>.</summary>
    public Mlp(string name = "mlp") : base(name) => hidden = Sub("hidden", () => new Dense(8));

    /// <summary>The F# layer built in the constructor.</summary>
    public Dense Hidden => hidden;

    /// <summary>hidden, relu, then an inline output layer without bias.</summary>
    public Tensor Forward(Tensor x) => Sub("out", () => new Dense(2, useBias: false)).Forward(nn.functional.relu(hidden.Forward(x)));

    /// <summary>Mean squared error.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (Forward(x) - y).square().mean();
}

/// <summary>Modules written in F# inside C# models and C# modules inside F# models, with the same paths.</summary>
public class MixedLanguageTests
{
    private static readonly Tensor X = ones(4, 5);

    [Fact]
    public void FSharp_layers_inside_a_CSharp_model_live_under_its_path()
    {
        var mlp = new Mlp();
        Assert.Equal("mlp/hidden", mlp.Hidden.Path);
        var state = Nj.Init(mlp.Forward)(States.Empty, X, seed: 0);
        Assert.Equal(new[] { "mlp/hidden/b", "mlp/hidden/w", "mlp/out/w" }, state.Keys);
        Assert.Equal(new long[] { 5, 8 }, state["mlp/hidden/w"].shape);
        var (_, grads) = Nj.Pure(() => Nj.Grad(mlp.Loss, mlp.Hidden)(X, zeros(4, 2)).Grads)(state);
        Assert.Equal(new[] { "mlp/hidden/b", "mlp/hidden/w" }, grads.Keys);
    }

    [Fact]
    public void A_CSharp_module_inside_an_FSharp_model_lives_under_its_path()
    {
        var outer = new Wrapper<CsDense>(() => new CsDense(3));
        Assert.Equal("outer/inner", outer.Inner.Path);
        var state = Nj.Init(outer.Forward)(States.Empty, X, seed: 0);
        Assert.Equal(new[] { "outer/inner/b", "outer/inner/w", "outer/post/b", "outer/post/w", "outer/pre/b", "outer/pre/w" }, state.Keys);
        Assert.Equal(new long[] { 4, 3 }, state["outer/inner/w"].shape);
        var (_, result) = Nj.Pure(() => Nj.Grad(outer.Loss, outer.Inner)(X, zeros(4, 2)))(state);
        Assert.Equal(new[] { "outer/inner/b", "outer/inner/w" }, result.Grads.Keys);
        Assert.True(result.Grads["outer/inner/w"].abs().sum().item<float>() > 0, "the gradient reaches the C# module");
    }

    [Fact]
    public void The_CSharp_and_FSharp_quickstart_models_train_identically()
    {
        var x = ones(16, 8);
        var y = ones(16, 3);
        var csModel = new Quickstart.MyModel(3);
        var fsModel = new FsQuickstartModel(3);
        var csState = Nj.Init(csModel.Train)(States.Empty, x, y, seed: 0);
        var fsState = FSharpFuncInit(fsModel, x, y);
        SameState(fsState, csState, "init");

        var csTrain = Nj.Pure(csModel.Train);
        for (var i = 0; i < 3; i++)
        {
            (csState, var csLoss) = csTrain(csState, x, y);
            (fsState, var fsLoss) = PurifyInFSharp(() => fsModel.Train(x, y), fsState, OptionsModule.defaults);
            SameTensor(fsLoss, csLoss, $"loss {i}");
        }
        SameState(fsState, csState, "after three steps");
    }

    /// <summary>The F# model initialized through the F# API, as F# code does it.</summary>
    private static State FSharpFuncInit(FsQuickstartModel model, Tensor x, Tensor y) =>
        Microsoft.FSharp.Core.FSharpFunc<State, ValueTuple>.InvokeFast(
            NjModule.init(0L, Microsoft.FSharp.Core.FuncConvert.FromFunc<ValueTuple, Tensor>(_ => model.Train(x, y))),
            States.Empty, default);
}
