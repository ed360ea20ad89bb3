using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>What one optimizer step reports.</summary>
/// <param name="Loss">The loss before the update (detached).</param>
/// <param name="GradNorm">The global L2 norm of the gradients before any transformation (so before clipping), in the loss's dtype.</param>
/// <param name="LearningRate">The learning rate of this update, when the transformation has one.</param>
public readonly record struct StepMetrics(Tensor Loss, Tensor GradNorm, double? LearningRate)
{
    /// <summary>The F# metrics as C# metrics.</summary>
    internal static StepMetrics Of(OptimizerMetrics metrics) =>
        new(metrics.Loss, metrics.GradNorm, FSharpOption<double>.get_IsSome(metrics.LearningRate) ? metrics.LearningRate.Value : null);
}

/// <summary>A module that owns an optimizer (ninjax's <c>OptaxModule</c>), for C#: it differentiates a loss with respect
/// to targets, turns the gradients into updates with a <see cref="GradientTransform"/> from <see cref="Optimizers"/>,
/// writes the new parameters, and keeps the optimizer's state under its own path (<c>model/opt/mu/model/h1/w</c>,
/// <c>model/opt/count</c>), created on first use. Make it as a submodule:
/// <c>opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(1e-3)))</c>, then
/// <c>opt.Minimize(Loss, [h1, h2], x, y)</c> in a purified call. It shares its machinery (<see cref="OptimizerBase"/>)
/// with the F# <see cref="Optimizer"/>, so both languages update alike and raise the same errors; it inherits none of
/// the F# one's F#-shaped members.</summary>
public sealed class OptimizerModule : OptimizerBase
{
    /// <summary>An optimizer module applying <paramref name="transform"/>.</summary>
    /// <param name="transform">The optimizer, such as <c>Optimizers.Adam(1e-3)</c>.</param>
    /// <param name="name">The name of a top-level optimizer; leave it out for a submodule made with <c>Sub</c>.</param>
    /// <param name="dataParallel">Train data-parallel across the ranks of this MPI job (<c>Communicator.World</c>): before
    /// every update the gradients are averaged across ranks (one all-reduce per step), so every rank applies the same
    /// update and the parameters stay bit-identical everywhere; the step metrics are then the ranks' averages. Null (the
    /// default) trains on this process alone.</param>
    public OptimizerModule(GradientTransform transform, string? name = null, Communicator? dataParallel = null)
        : base(GradientTransform.Unwrap(transform, nameof(transform)), name, dataParallel) => Transform = transform;

    /// <summary>The optimizer this module applies.</summary>
    public GradientTransform Transform { get; }

    /// <summary>The targets as F# targets; null is refused naming the parameter.</summary>
    private static FSharpList<Target> Resolve(IEnumerable<object>? targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return Targets.Of(targets as object[] ?? targets.ToArray());
    }

    /// <summary>Takes one optimizer step on <paramref name="loss"/> with respect to <paramref name="targets"/> (the
    /// optimizer's own state is never a target): <c>opt.Minimize(() => Loss(x, y), h1, h2, $"{Path}/bias")</c>.</summary>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys (a key selects itself and every key under it) and
    /// <see cref="System.Text.RegularExpressions.Regex"/> patterns; sequences of them are flattened.</param>
    /// <returns>The loss before the update, the gradients' global norm and the learning rate used.</returns>
    public StepMetrics Minimize(Func<Tensor> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return StepMetrics.Of(MinimizeWith(FuncConvert.FromFunc<ValueTuple, Tensor>(_ => loss()), Resolve(targets), default));
    }

    /// <summary>Takes one optimizer step on a loss of 1 argument:
    /// <c>opt.Minimize(Loss, [h1, h2, $"{Path}/bias"], x, y)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <returns>The loss before the update, the gradients' global norm and the learning rate used.</returns>
    public StepMetrics Minimize<T1>(Func<T1, Tensor> loss, IEnumerable<object> targets, T1 arg1)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return StepMetrics.Of(MinimizeWith(FuncConvert.FromFunc<T1, Tensor>(a => loss(a)), Resolve(targets), arg1));
    }

    /// <summary>Takes one optimizer step on a loss of 2 arguments:
    /// <c>opt.Minimize(Loss, [h1, h2, $"{Path}/bias"], x, y)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <returns>The loss before the update, the gradients' global norm and the learning rate used.</returns>
    public StepMetrics Minimize<T1, T2>(Func<T1, T2, Tensor> loss, IEnumerable<object> targets, T1 arg1, T2 arg2)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return StepMetrics.Of(MinimizeWith(FuncConvert.FromFunc<(T1, T2), Tensor>(a => loss(a.Item1, a.Item2)), Resolve(targets), (arg1, arg2)));
    }

    /// <summary>Takes one optimizer step on a loss of 3 arguments:
    /// <c>opt.Minimize(Loss, [h1, h2, $"{Path}/bias"], x, y)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <param name="arg3">The third argument.</param>
    /// <returns>The loss before the update, the gradients' global norm and the learning rate used.</returns>
    public StepMetrics Minimize<T1, T2, T3>(Func<T1, T2, T3, Tensor> loss, IEnumerable<object> targets, T1 arg1, T2 arg2, T3 arg3)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return StepMetrics.Of(MinimizeWith(FuncConvert.FromFunc<(T1, T2, T3), Tensor>(a => loss(a.Item1, a.Item2, a.Item3)), Resolve(targets), (arg1, arg2, arg3)));
    }

    /// <summary>Takes one optimizer step on a loss of 4 arguments:
    /// <c>opt.Minimize(Loss, [h1, h2, $"{Path}/bias"], x, y)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <param name="loss">The impure loss function; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <param name="arg3">The third argument.</param>
    /// <param name="arg4">The fourth argument.</param>
    /// <returns>The loss before the update, the gradients' global norm and the learning rate used.</returns>
    public StepMetrics Minimize<T1, T2, T3, T4>(Func<T1, T2, T3, T4, Tensor> loss, IEnumerable<object> targets, T1 arg1, T2 arg2, T3 arg3, T4 arg4)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return StepMetrics.Of(MinimizeWith(FuncConvert.FromFunc<(T1, T2, T3, T4), Tensor>(a => loss(a.Item1, a.Item2, a.Item3, a.Item4)), Resolve(targets), (arg1, arg2, arg3, arg4)));
    }

    /// <summary>Takes one optimizer step on a loss of 1 argument that also returns an auxiliary value.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="TAux">The type of the auxiliary value.</typeparam>
    /// <param name="loss">The impure loss function, returning the loss and the auxiliary value; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <returns>The step's metrics and the auxiliary value.</returns>
    public (StepMetrics Metrics, TAux Aux) MinimizeAux<T1, TAux>(Func<T1, (Tensor Loss, TAux Aux)> loss, IEnumerable<object> targets, T1 arg1)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = MinimizeAuxWith(FuncConvert.FromFunc<T1, Tuple<Tensor, TAux>>(a => loss(a).ToTuple()), Resolve(targets), arg1);
        return (StepMetrics.Of(result.Item1), result.Item2);
    }

    /// <summary>Takes one optimizer step on a loss of 2 arguments that also returns an auxiliary value.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="TAux">The type of the auxiliary value.</typeparam>
    /// <param name="loss">The impure loss function, returning the loss and the auxiliary value; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <returns>The step's metrics and the auxiliary value.</returns>
    public (StepMetrics Metrics, TAux Aux) MinimizeAux<T1, T2, TAux>(Func<T1, T2, (Tensor Loss, TAux Aux)> loss, IEnumerable<object> targets, T1 arg1, T2 arg2)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = MinimizeAuxWith(FuncConvert.FromFunc<(T1, T2), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2).ToTuple()), Resolve(targets), (arg1, arg2));
        return (StepMetrics.Of(result.Item1), result.Item2);
    }

    /// <summary>Takes one optimizer step on a loss of 3 arguments that also returns an auxiliary value.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="TAux">The type of the auxiliary value.</typeparam>
    /// <param name="loss">The impure loss function, returning the loss and the auxiliary value; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <param name="arg3">The third argument.</param>
    /// <returns>The step's metrics and the auxiliary value.</returns>
    public (StepMetrics Metrics, TAux Aux) MinimizeAux<T1, T2, T3, TAux>(Func<T1, T2, T3, (Tensor Loss, TAux Aux)> loss, IEnumerable<object> targets, T1 arg1, T2 arg2, T3 arg3)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = MinimizeAuxWith(FuncConvert.FromFunc<(T1, T2, T3), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2, a.Item3).ToTuple()), Resolve(targets), (arg1, arg2, arg3));
        return (StepMetrics.Of(result.Item1), result.Item2);
    }

    /// <summary>Takes one optimizer step on a loss of 4 arguments that also returns an auxiliary value.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <typeparam name="TAux">The type of the auxiliary value.</typeparam>
    /// <param name="loss">The impure loss function, returning the loss and the auxiliary value; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <param name="arg1">The first argument.</param>
    /// <param name="arg2">The second argument.</param>
    /// <param name="arg3">The third argument.</param>
    /// <param name="arg4">The fourth argument.</param>
    /// <returns>The step's metrics and the auxiliary value.</returns>
    public (StepMetrics Metrics, TAux Aux) MinimizeAux<T1, T2, T3, T4, TAux>(Func<T1, T2, T3, T4, (Tensor Loss, TAux Aux)> loss, IEnumerable<object> targets, T1 arg1, T2 arg2, T3 arg3, T4 arg4)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = MinimizeAuxWith(FuncConvert.FromFunc<(T1, T2, T3, T4), Tuple<Tensor, TAux>>(a => loss(a.Item1, a.Item2, a.Item3, a.Item4).ToTuple()), Resolve(targets), (arg1, arg2, arg3, arg4));
        return (StepMetrics.Of(result.Item1), result.Item2);
    }

    /// <summary>Takes one optimizer step on a loss that also returns an auxiliary value:
    /// <c>var (metrics, logits) = opt.MinimizeAux(() => (Loss(x, y), logits), h1)</c>.</summary>
    /// <typeparam name="TAux">The type of the auxiliary value.</typeparam>
    /// <param name="loss">The impure loss function, returning the loss and the auxiliary value; it must read every targeted entry.</param>
    /// <param name="targets">What to update: modules, string keys and <see cref="System.Text.RegularExpressions.Regex"/> patterns.</param>
    /// <returns>The step's metrics and the auxiliary value.</returns>
    public (StepMetrics Metrics, TAux Aux) MinimizeAux<TAux>(Func<(Tensor Loss, TAux Aux)> loss, params object[] targets)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var result = MinimizeAuxWith(FuncConvert.FromFunc<ValueTuple, Tuple<Tensor, TAux>>(_ => loss().ToTuple()), Resolve(targets), default);
        return (StepMetrics.Of(result.Item1), result.Item2);
    }

    /// <summary>Applies gradients to parameters inside a purified call: the optimizer's update (its state created on
    /// first use), the new parameters written to the state, and the optimizer's state advanced. Both states are keyed
    /// by absolute parameter key, as <see cref="Nj.Grad(Func{Tensor}, object[])"/> returns them.</summary>
    /// <param name="parameters">The parameters to update.</param>
    /// <param name="grads">Their gradients, keyed alike.</param>
    /// <returns>The new parameters and the learning rate used, when the transformation has one.</returns>
    public (State Params, double? LearningRate) Apply(State parameters, State grads)
    {
        var result = ApplyGrads(parameters, grads);
        return (result.Item1, FSharpOption<double>.get_IsSome(result.Item2) ? result.Item2.Value : null);
    }
}
