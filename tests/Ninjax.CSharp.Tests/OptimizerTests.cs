using System.Text.RegularExpressions;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Ninjax.CSharp.Tests.FSharpModels;
using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>The C# twin of <see cref="FsOptModel"/>: the same layers and paths, trained with an <see cref="OptimizerModule"/>.</summary>
public sealed class CsOptModel : Module
{
    private readonly Dense h1;

    /// <summary>A model whose optimizer applies <paramref name="transform"/>.</summary>
    public CsOptModel(GradientTransform transform, string name = "model") : base(name)
    {
        h1 = Sub("h1", () => new Dense(16));
        Opt = Sub("opt", () => new OptimizerModule(transform));
    }

    /// <summary>The optimizer submodule.</summary>
    public OptimizerModule Opt { get; }

    /// <summary>The prediction for a batch.</summary>
    public Tensor Predict(Tensor x) =>
        Sub("h2", () => new Dense(3)).Forward(nn.functional.relu(h1.Forward(x))) + Get("bias", () => zeros(3));

    /// <summary>Mean squared error.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (Predict(x) - y).square().mean();

    /// <summary>The targets, as the F# twin has them: a module and two keys.</summary>
    public object[] Targets => new object[] { h1, $"{Path}/h2", $"{Path}/bias" };

    /// <summary>One optimizer step.</summary>
    public StepMetrics Train(Tensor x, Tensor y) => Opt.Minimize(Loss, Targets, x, y);
}

/// <summary>The optimizer module and factories from C#: state under the optimizer's path, training, and the same
/// arithmetic and errors as the F# optimizers they forward to.</summary>
public class OptimizerTests
{
    private static (Tensor X, Tensor Y) Data()
    {
        using var g = new Generator(7);
        return (randn(new long[] { 32, 8 }, generator: g), randn(new long[] { 32, 3 }, generator: g));
    }

    private static readonly string[] Parameters = { "model/bias", "model/h1/b", "model/h1/w", "model/h2/b", "model/h2/w" };

    /// <summary>Trains the C# model for <paramref name="steps"/> steps from its initial state.</summary>
    private static (State State, List<StepMetrics> Metrics) TrainCs(GradientTransform transform, int steps, bool donate = false)
    {
        var (x, y) = Data();
        var model = new CsOptModel(transform);
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 1);
        var train = Nj.Pure(model.Train, donate: donate);
        var metrics = new List<StepMetrics>();
        for (var i = 0; i < steps; i++)
        {
            (state, var m) = train(state, x, y);
            metrics.Add(m);
        }
        return (state, metrics);
    }

    /// <summary>Trains the F# twin for <paramref name="steps"/> steps from its initial state, through the F# API.</summary>
    private static (State State, List<(Tensor Loss, Tensor GradNorm, double? LearningRate)> Metrics) TrainFs(GradientTransformation transform, int steps)
    {
        var (x, y) = Data();
        var model = new FsOptModel(transform);
        var train = FuncConvert.FromFunc<Tuple<Tensor, Tensor>, ValueTuple<Tensor, Tensor, double?>>(a => model.Train(a.Item1, a.Item2));
        var state = FSharpFunc<State, Tuple<Tensor, Tensor>>.InvokeFast(NjModule.init(1L, train), States.Empty, Tuple.Create(x, y));
        var pure = NjModule.purify(train);
        var metrics = new List<(Tensor, Tensor, double?)>();
        for (var i = 0; i < steps; i++)
        {
            var result = FSharpFunc<State, Tuple<Tensor, Tensor>>.InvokeFast(pure, state, Tuple.Create(x, y));
            state = result.Item1;
            metrics.Add(result.Item2);
        }
        return (state, metrics);
    }

    [Fact]
    public void An_Adam_step_keeps_its_state_under_the_optimizers_path()
    {
        var (state, metrics) = TrainCs(Optimizers.Adam(1e-2), steps: 1);
        var expected = Parameters
            .Concat(new[] { "model/opt/count", "model/opt/learning_rate", "model/opt/targets" })
            .Concat(Parameters.Select(k => $"model/opt/mu/{k}"))
            .Concat(Parameters.Select(k => $"model/opt/nu/{k}"))
            .OrderBy(k => k, StringComparer.Ordinal);
        Assert.Equal(expected, state.Keys);
        Assert.Equal(1L, state["model/opt/count"].item<long>());
        foreach (var k in Parameters)
        {
            Assert.Equal(state[k].shape, state[$"model/opt/mu/{k}"].shape);
            Assert.Equal(state[k].shape, state[$"model/opt/nu/{k}"].shape);
        }
        // One step has moved the first moment off zero: mu = (1 - beta1) g.
        Assert.True(state["model/opt/mu/model/h1/w"].abs().sum().item<float>() > 0);
        var m = metrics[0];
        Assert.Equal(0.01, m.LearningRate);
        Assert.Equal(ScalarType.Float32, m.GradNorm.dtype);
        Assert.True(m.GradNorm.item<float>() > 0);
        Assert.Empty(m.Loss.shape);
    }

    [Fact]
    public void The_loss_falls_over_Adam_steps()
    {
        var (_, metrics) = TrainCs(Optimizers.Adam(1e-2), steps: 30);
        var losses = metrics.Select(m => m.Loss.item<float>()).ToArray();
        Assert.True(losses[^1] < losses[0] * 0.7f, string.Join(", ", losses));
        Assert.True(losses.Skip(20).Max() < losses.Take(5).Min(), string.Join(", ", losses));
    }

    /// <summary>Each C# factory call beside the same configuration written in F#.</summary>
    public static TheoryData<string> Configurations => new()
    {
        "adam", "adamTuned", "adamw", "adamwTuned", "sgdTuned", "sgdNesterov", "rmspropTuned", "clippedScheduledAdam", "sgdWarmupIntoCosine",
    };

    private static (GradientTransform CSharp, GradientTransformation FSharp) Configuration(string name) => name switch
    {
        "adam" => (Optimizers.Adam(1e-2), FsTransforms.adam()),
        "adamTuned" => (Optimizers.Adam(3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1), FsTransforms.adamTuned()),
        "adamw" => (Optimizers.AdamW(1e-2), FsTransforms.adamw()),
        "adamwTuned" => (Optimizers.AdamW(5e-3, beta1: 0.85, beta2: 0.98, eps: 1e-7, weightDecay: 0.2), FsTransforms.adamwTuned()),
        "sgdTuned" => (Optimizers.Sgd(0.05, momentum: 0.8, weightDecay: 0.01, dampening: 0.3), FsTransforms.sgdTuned()),
        "sgdNesterov" => (Optimizers.Sgd(0.05, momentum: 0.9, nesterov: true), FsTransforms.sgdNesterov()),
        "rmspropTuned" => (Optimizers.RmsProp(1e-3, alpha: 0.9, eps: 1e-6, weightDecay: 0.01, momentum: 0.9, centered: true), FsTransforms.rmspropTuned()),
        "clippedScheduledAdam" => (
            Optimizers.Chain(Optimizers.ClipByGlobalNorm(0.5), Optimizers.Adam(Schedules.WarmupCosineDecay(0, 1e-2, 2, 10, endValue: 1e-4))),
            FsTransforms.clippedScheduledAdam()),
        "sgdWarmupIntoCosine" => (
            Optimizers.Sgd(Schedules.LinearWarmupInto(0, 2, Schedules.CosineDecay(0.1, 6, alpha: 0.1))),
            FsTransforms.sgdWarmupIntoCosine()),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void A_CSharp_optimizer_matches_the_same_FSharp_optimizer_bit_for_bit(string name)
    {
        var (cs, fs) = Configuration(name);
        var (csState, csMetrics) = TrainCs(cs, steps: 8);
        var (fsState, fsMetrics) = TrainFs(fs, steps: 8);
        SameState(fsState, csState, name);
        for (var i = 0; i < csMetrics.Count; i++)
        {
            SameTensor(fsMetrics[i].Loss, csMetrics[i].Loss, $"{name}: loss at step {i}");
            SameTensor(fsMetrics[i].GradNorm, csMetrics[i].GradNorm, $"{name}: gradient norm at step {i}");
            Assert.Equal(fsMetrics[i].LearningRate, csMetrics[i].LearningRate);
        }
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("adamwTuned")]
    [InlineData("sgdTuned")]
    public void A_donating_loop_matches_the_plain_loop_bit_for_bit(string name)
    {
        var (plainState, plainMetrics) = TrainCs(Configuration(name).CSharp, steps: 6);
        var (donatedState, donatedMetrics) = TrainCs(Configuration(name).CSharp, steps: 6, donate: true);
        SameState(plainState, donatedState, name);
        for (var i = 0; i < plainMetrics.Count; i++)
        {
            SameTensor(plainMetrics[i].Loss, donatedMetrics[i].Loss, $"{name}: loss at step {i}");
            SameTensor(plainMetrics[i].GradNorm, donatedMetrics[i].GradNorm, $"{name}: gradient norm at step {i}");
        }
        Assert.False(donatedState.IsDonated);
    }

    [Fact]
    public void A_donated_state_cannot_be_used_again()
    {
        var (x, y) = Data();
        var model = new CsOptModel(Optimizers.Adam(1e-2));
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 1);
        var train = Nj.Pure(model.Train, name: "train", donate: true);
        var (next, _) = train(state, x, y);
        Assert.True(state.IsDonated);
        var error = Assert.Throws<InvalidOperationException>(() => train(state, x, y));
        Assert.Contains("donated to train", error.Message);
        Assert.Throws<InvalidOperationException>(() => state["model/h1/w"]);
        var (_, metrics) = train(next, x, y);
        Assert.True(float.IsFinite(metrics.Loss.item<float>()));
    }

    [Fact]
    public void Schedules_give_the_FSharp_schedules_values()
    {
        var pairs = new (Func<long, double> CSharp, FSharpFunc<long, double> FSharp)[]
        {
            (Schedules.Constant(0.3), ScheduleModule.constant(0.3)),
            (Schedules.LinearWarmup(0.1, 0.5, 4), ScheduleModule.linearWarmup(0.1, 0.5, 4)),
            (Schedules.CosineDecay(2, 100, alpha: 0.1), ScheduleModule.cosineDecay(2, 100, 0.1)),
            (Schedules.WarmupCosineDecay(0, 1, 10, 110, endValue: 0.1), ScheduleModule.warmupCosineDecay(0, 1, 10, 110, 0.1)),
        };
        foreach (var (cs, fs) in pairs)
            foreach (var step in new long[] { 0, 1, 3, 4, 5, 10, 50, 60, 100, 110, 1000 })
                Assert.Equal(fs.Invoke(step), cs(step));
        Assert.Equal(0.5, Schedules.LinearWarmup(0, 1, 10)(5));
        Assert.Equal(0.2, Schedules.CosineDecay(2, 100, alpha: 0.1)(100), 12);
    }

    [Fact]
    public void Apply_after_Grad_is_the_same_step_as_Minimize()
    {
        var (x, y) = Data();
        var model = new CsOptModel(Optimizers.Adam(1e-2));
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 3);
        var (viaMinimize, metrics) = Nj.Pure(model.Train)(state, x, y);
        var (viaApply, applied) = Nj.Pure((Tensor x, Tensor y) =>
        {
            var (loss, parameters, grads) = Nj.Grad(model.Loss, model.Targets)(x, y);
            var (updated, learningRate) = model.Opt.Apply(parameters, grads);
            return (loss, updated, learningRate);
        })(state, x, y);
        SameState(viaMinimize, viaApply, "state");
        SameTensor(metrics.Loss, applied.loss, "loss");
        Assert.Equal(0.01, applied.learningRate);
        SameState(viaMinimize.Filter((k, _) => !k.StartsWith("model/opt/")), applied.updated, "the returned parameters");
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("sgdTuned")]
    [InlineData("rmspropTuned")]
    [InlineData("clippedScheduledAdam")]
    public void StepMetrics_GradNorm_is_the_global_norm_of_the_gradients_before_clipping(string name)
    {
        // The fused steps sum the gradients' squares as they read them; with clipping chained
        // before Adam they still read the unclipped gradients.
        var (x, y) = Data();
        var model = new CsOptModel(Configuration(name).CSharp);
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 3);
        for (var step = 0; step < 3; step++)
        {
            var (_, grads) = Nj.Pure((Tensor x, Tensor y) => Nj.Grad(model.Loss, model.Targets)(x, y).Grads)(state, x, y);
            var (next, metrics) = Nj.Pure(model.Train)(state, x, y);
            var norm = Optimizers.GlobalNorm(grads).item<double>();
            Assert.Equal(ScalarType.Float32, metrics.GradNorm.dtype);
            var reported = metrics.GradNorm.item<float>();
            Assert.True(Math.Abs(reported - norm) <= 1e-6 * norm, $"{name}, step {step}: GradNorm {reported}, the gradients' norm {norm}");
            if (name == "clippedScheduledAdam")
                Assert.True(norm > 0.5, $"the gradients are clipped (norm {norm} above 0.5)");
            state = next;
        }
    }

    [Fact]
    public void MinimizeAux_returns_the_auxiliary_value_beside_the_metrics()
    {
        var (x, y) = Data();
        var model = new CsOptModel(Optimizers.Sgd(0.1));
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 3);
        var (next, result) = Nj.Pure((Tensor x, Tensor y) => model.Opt.MinimizeAux((Tensor x, Tensor y) =>
        {
            var p = model.Predict(x);
            return ((p - y).square().mean(), p.shape);
        }, model.Targets, x, y))(state, x, y);
        Assert.Equal(new long[] { 32, 3 }, result.Aux);
        Assert.Equal(0.1, result.Metrics.LearningRate);
        var (plain, metrics) = Nj.Pure(model.Train)(state, x, y);
        SameState(plain, next, "same step as Minimize");
        SameTensor(metrics.Loss, result.Metrics.Loss, "loss");

        var (closed, viaClosure) = Nj.Pure(() => model.Opt.MinimizeAux(() => (model.Loss(x, y), 7), model.Targets))(state);
        Assert.Equal(7, viaClosure.Aux);
        SameState(plain, closed, "closure form");
    }

    [Fact]
    public void Targets_may_be_modules_keys_patterns_and_nested_lists_in_any_mix()
    {
        var (x, y) = Data();
        var model = new CsOptModel(Optimizers.Sgd(0.1));
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 3);
        var (expected, _) = Nj.Pure(model.Train)(state, x, y);
        var (viaClosure, _) = Nj.Pure(() => model.Opt.Minimize(() => model.Loss(x, y), model.Targets))(state);
        SameState(expected, viaClosure, "closure form");
        var mixed = new object[] { new List<object> { "model/h1" }, new Regex("^model/h2/"), new[] { "model/bias" } };
        var (viaMix, _) = Nj.Pure(() => model.Opt.Minimize(model.Loss, mixed, x, y))(state);
        SameState(expected, viaMix, "mixed targets");
        // The whole model is a target too: the optimizer's own state under it is left out.
        var (viaModel, _) = Nj.Pure(() => model.Opt.Minimize(model.Loss, [model], x, y))(state);
        SameState(expected, viaModel, "the model as a target");
    }

    /// <summary>Asserts both calls raise <typeparamref name="TException"/> with the same message, and returns it.</summary>
    private static string SameError<TException>(Action viaCSharp, Action viaFSharp) where TException : Exception
    {
        var fs = Raises<TException>(viaFSharp);
        var cs = Raises<TException>(viaCSharp);
        Assert.Equal(fs.Message, cs.Message);
        return cs.Message;
    }

    [Fact]
    public void Bad_hyperparameters_raise_the_FSharp_errors()
    {
        Assert.Contains("learningRate", SameError<ArgumentOutOfRangeException>(() => Optimizers.Adam(-1e-3), () => Optax.adam(-1e-3)));
        Assert.Contains("learningRate", SameError<ArgumentOutOfRangeException>(() => Optimizers.Sgd(double.NaN), () => Optax.sgd(double.NaN)));
        Assert.Contains("beta1", SameError<ArgumentOutOfRangeException>(
            () => Optimizers.Adam(1e-3, beta1: 1.5),
            () => Optax.adamWith(new AdamOptions(ScheduleModule.constant(1e-3), 1.5, 0.999, 1e-8, 0))));
        Assert.Contains("Nesterov", SameError<ArgumentException>(
            () => Optimizers.Sgd(0.1, nesterov: true),
            () => Optax.sgdWith(new SgdOptions(ScheduleModule.constant(0.1), 0, 0, 0, true))));
        Assert.Contains("maxNorm", SameError<ArgumentOutOfRangeException>(() => Optimizers.ClipByGlobalNorm(0), () => Optax.clipByGlobalNorm(0)));
        Assert.Contains("decaySteps", SameError<ArgumentOutOfRangeException>(
            () => Schedules.WarmupCosineDecay(0, 1, 10, 10), () => ScheduleModule.warmupCosineDecay(0, 1, 10, 10, 0)));
        Assert.Contains("Member 1", Raises<ArgumentNullException>(() => Optimizers.Chain(Optimizers.Sgd(0.1), null!)).Message);
        Assert.Equal("transform", Raises<ArgumentNullException>(() => new OptimizerModule(null!, "opt")).ParamName);
    }

    [Fact]
    public void Step_errors_name_the_optimizer_and_the_targets()
    {
        // The F# Optimizer runs the same machinery (OptimizerBase); its wording is pinned in the F# tests.
        var (x, y) = Data();
        var model = new CsOptModel(Optimizers.Adam(1e-2));
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 3);

        // Targeting the optimizer itself.
        var itself = Raises<ArgumentException>(() => Nj.Pure(() => model.Opt.Minimize(model.Loss, [model.Opt], x, y))(state));
        Assert.Contains("is the optimizer 'model/opt' itself", itself.Message);

        // Other targets than the optimizer state was made for.
        var changed = Raises<ArgumentException>(() => Nj.Pure(() => model.Opt.Minimize(model.Loss, ["model/h1"], x, y))(state));
        Assert.Contains("'model/opt'", changed.Message);
        Assert.Contains("targets changed", changed.Message);

        // A target of the wrong kind is refused by the facade, naming its position and type.
        var wrong = Raises<ArgumentException>(() => Nj.Pure(() => model.Opt.Minimize(model.Loss, ["model/h1", 3], x, y))(state));
        Assert.Contains("position 1", wrong.Message);
        Assert.Contains("Int32", wrong.Message);
    }
}
