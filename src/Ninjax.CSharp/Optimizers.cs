using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace Ninjax.CSharp;

/// <summary>Optimizers and gradient transformations in Optax's shape, matching torch.optim's update rules, for an
/// <see cref="OptimizerModule"/>: <c>Sub("opt", () => new OptimizerModule(Optimizers.Adam(1e-3)))</c>. Every factory
/// forwards to the F# <c>Optax</c> module; the defaults are torch.optim's. A learning rate is a constant or a schedule
/// from <see cref="Schedules"/> (any function from the step to the rate).</summary>
public static partial class Optimizers
{
    /// <summary>A constant learning rate, refused as <c>Optax.sgd</c>, <c>Optax.adam</c> and the others refuse it
    /// (negative, infinite or NaN), with their message.</summary>
    private static FSharpFunc<long, double> ConstantRate(double learningRate)
    {
        _ = Optax.sgd(learningRate);
        return ScheduleModule.constant(learningRate);
    }

    private static GradientTransform Wrap(GradientTransformation transformation) => new(transformation);

    /// <summary>Adam as torch.optim.Adam; <paramref name="weightDecay"/> is an L2 penalty added to the gradient.</summary>
    /// <param name="learningRate">The learning rate; finite and not negative.</param>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Adam(double learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0) =>
        Wrap(Optax.adamWith(new AdamOptions(ConstantRate(learningRate), beta1, beta2, eps, weightDecay)));

    /// <summary>Adam as torch.optim.Adam, with a learning-rate schedule.</summary>
    /// <param name="learningRate">The learning rate at each step, such as <see cref="Schedules.WarmupCosineDecay"/>.</param>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Adam(Func<long, double> learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0) =>
        Wrap(Optax.adamWith(new AdamOptions(Schedules.ToFSharp(learningRate, nameof(learningRate)), beta1, beta2, eps, weightDecay)));

    /// <summary>AdamW as torch.optim.AdamW: decoupled weight decay, <c>param -= lr * weightDecay * param</c>.</summary>
    /// <param name="learningRate">The learning rate; finite and not negative.</param>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">Decoupled weight decay (PyTorch's default 0.01).</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform AdamW(double learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01) =>
        Wrap(Optax.adamwWith(new AdamOptions(ConstantRate(learningRate), beta1, beta2, eps, weightDecay)));

    /// <summary>AdamW as torch.optim.AdamW, with a learning-rate schedule.</summary>
    /// <param name="learningRate">The learning rate at each step.</param>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">Decoupled weight decay (PyTorch's default 0.01).</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform AdamW(Func<long, double> learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01) =>
        Wrap(Optax.adamwWith(new AdamOptions(Schedules.ToFSharp(learningRate, nameof(learningRate)), beta1, beta2, eps, weightDecay)));

    /// <summary>SGD as torch.optim.SGD: L2 weight decay, momentum with dampening, optional Nesterov momentum.</summary>
    /// <param name="learningRate">The learning rate; finite and not negative.</param>
    /// <param name="momentum">The momentum factor; 0 turns momentum off.</param>
    /// <param name="nesterov">Nesterov momentum (needs <paramref name="momentum"/> above 0 and <paramref name="dampening"/> 0).</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <param name="dampening">Dampening of the gradient's contribution to the momentum buffer.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Sgd(double learningRate, double momentum = 0, bool nesterov = false, double weightDecay = 0, double dampening = 0) =>
        Wrap(Optax.sgdWith(new SgdOptions(ConstantRate(learningRate), momentum, dampening, weightDecay, nesterov)));

    /// <summary>SGD as torch.optim.SGD, with a learning-rate schedule.</summary>
    /// <param name="learningRate">The learning rate at each step.</param>
    /// <param name="momentum">The momentum factor; 0 turns momentum off.</param>
    /// <param name="nesterov">Nesterov momentum (needs <paramref name="momentum"/> above 0 and <paramref name="dampening"/> 0).</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <param name="dampening">Dampening of the gradient's contribution to the momentum buffer.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Sgd(Func<long, double> learningRate, double momentum = 0, bool nesterov = false, double weightDecay = 0, double dampening = 0) =>
        Wrap(Optax.sgdWith(new SgdOptions(Schedules.ToFSharp(learningRate, nameof(learningRate)), momentum, dampening, weightDecay, nesterov)));

    /// <summary>RMSprop as torch.optim.RMSprop: L2 weight decay, optional centering and momentum.</summary>
    /// <param name="learningRate">The learning rate; finite and not negative.</param>
    /// <param name="alpha">Smoothing constant of the running average of squared gradients, in [0, 1].</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <param name="momentum">The momentum factor; 0 turns momentum off.</param>
    /// <param name="centered">Normalise by an estimate of the gradient's variance instead of its second moment.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform RmsProp(double learningRate, double alpha = 0.99, double eps = 1e-8, double weightDecay = 0, double momentum = 0, bool centered = false) =>
        Wrap(Optax.rmspropWith(new RmsPropOptions(ConstantRate(learningRate), alpha, eps, weightDecay, momentum, centered)));

    /// <summary>RMSprop as torch.optim.RMSprop, with a learning-rate schedule.</summary>
    /// <param name="learningRate">The learning rate at each step.</param>
    /// <param name="alpha">Smoothing constant of the running average of squared gradients, in [0, 1].</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="weightDecay">L2 penalty; 0 for none.</param>
    /// <param name="momentum">The momentum factor; 0 turns momentum off.</param>
    /// <param name="centered">Normalise by an estimate of the gradient's variance instead of its second moment.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform RmsProp(Func<long, double> learningRate, double alpha = 0.99, double eps = 1e-8, double weightDecay = 0, double momentum = 0, bool centered = false) =>
        Wrap(Optax.rmspropWith(new RmsPropOptions(Schedules.ToFSharp(learningRate, nameof(learningRate)), alpha, eps, weightDecay, momentum, centered)));

    /// <summary>Scales all updates by one factor so that their global norm is at most <paramref name="maxNorm"/>;
    /// chain it before an optimizer: <c>Optimizers.Chain(Optimizers.ClipByGlobalNorm(1), Optimizers.Adam(1e-3))</c>.</summary>
    /// <param name="maxNorm">The largest global L2 norm; finite and above 0.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform ClipByGlobalNorm(double maxNorm) => Wrap(Optax.clipByGlobalNorm(maxNorm));

    /// <summary>Applies transformations in order, each to the updates of the one before; their states are kept side by side.</summary>
    /// <param name="transforms">The transformations, first applied first.</param>
    /// <returns>The chained transformation.</returns>
    public static GradientTransform Chain(params GradientTransform[] transforms)
    {
        ArgumentNullException.ThrowIfNull(transforms);
        var members = transforms.Select((t, i) => t is null
            ? throw new ArgumentNullException(nameof(transforms), $"Member {i} of the chain is null.")
            : t.Transformation);
        return Wrap(Optax.chain(ListModule.OfSeq(members)));
    }
}
