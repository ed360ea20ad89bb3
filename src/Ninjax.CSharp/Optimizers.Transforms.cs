using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Optimizers
{
    /// <summary>The key of the step count in an optimizer's state (an int64 scalar, the updates applied so far), shared
    /// by every member of a chain.</summary>
    public const string CountKey = Optax.CountKey;

    /// <summary>The key under which <see cref="ScaleByLearningRate(double)"/> records the latest learning rate.</summary>
    public const string LearningRateKey = Optax.LearningRateKey;

    /// <summary>The transformation that passes updates through unchanged and keeps no state.</summary>
    public static GradientTransform Identity => Wrap(Optax.identity);

    /// <summary>Keeps a transformation's state under <c>name/</c>, so that two transformations with the same state keys
    /// can be chained.</summary>
    /// <param name="name">The prefix, one key segment.</param>
    /// <param name="inner">The transformation whose state to prefix.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Scoped(string name, GradientTransform inner) =>
        Wrap(Optax.scoped(name, GradientTransform.Unwrap(inner, nameof(inner))));

    /// <summary>Multiplies updates by a constant factor.</summary>
    /// <param name="factor">The factor; finite.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Scale(double factor) => Wrap(Optax.scale(factor));

    /// <summary>Multiplies updates by minus the learning rate (descent); keeps the step count and the latest rate.</summary>
    /// <param name="learningRate">The learning rate; finite and not negative.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform ScaleByLearningRate(double learningRate) => Wrap(Optax.scaleByLearningRate(ConstantRate(learningRate)));

    /// <summary>Multiplies updates by minus the learning rate of the current step, from a schedule.</summary>
    /// <param name="learningRate">The learning rate at each step, such as <see cref="Schedules.CosineDecay"/>.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform ScaleByLearningRate(Func<long, double> learningRate) =>
        Wrap(Optax.scaleByLearningRate(Schedules.ToFSharp(learningRate, nameof(learningRate))));

    /// <summary>Adds <c>weightDecay * param</c> to the updates: an L2 penalty before moment estimation, decoupled weight
    /// decay (AdamW) after it.</summary>
    /// <param name="weightDecay">The factor; finite and not negative.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform AddDecayedWeights(double weightDecay) => Wrap(Optax.addDecayedWeights(weightDecay));

    /// <summary>Momentum as torch.optim.SGD computes it (<c>buf = momentum * buf + (1 - dampening) * g</c>), optionally
    /// Nesterov's; keeps <c>trace/&lt;key&gt;</c> and the count.</summary>
    /// <param name="momentum">The momentum factor; not negative.</param>
    /// <param name="dampening">Dampening of the gradient's contribution, in [0, 1].</param>
    /// <param name="nesterov">Nesterov momentum (needs momentum above 0 and dampening 0).</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform Trace(double momentum, double dampening = 0, bool nesterov = false) =>
        Wrap(Optax.trace(momentum, dampening, nesterov));

    /// <summary>Adam's moment estimation as torch.optim.Adam computes it, without the learning rate; keeps <c>mu/</c>,
    /// <c>nu/</c> and the count. Chain it with <see cref="ScaleByLearningRate(double)"/>.</summary>
    /// <param name="beta1">Decay rate of the first moment, in [0, 1).</param>
    /// <param name="beta2">Decay rate of the second moment, in [0, 1).</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform ScaleByAdam(double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8) =>
        Wrap(Optax.scaleByAdam(beta1, beta2, eps));

    /// <summary>RMSprop's normalisation as torch.optim.RMSprop computes it, without momentum or learning rate; keeps
    /// <c>nu/</c> (and <c>mu/</c> when centered).</summary>
    /// <param name="alpha">Smoothing constant of the running average of squared gradients, in [0, 1].</param>
    /// <param name="eps">Added to the denominator for numerical stability.</param>
    /// <param name="centered">Normalise by an estimate of the gradient's variance.</param>
    /// <returns>The transformation.</returns>
    public static GradientTransform ScaleByRms(double alpha = 0.99, double eps = 1e-8, bool centered = false) =>
        Wrap(Optax.scaleByRms(alpha, eps, centered));

    /// <summary>The global L2 norm of all tensors of a state (as of gradients), a float64 scalar.</summary>
    /// <param name="tensors">The tensors, such as gradients.</param>
    /// <returns>The norm.</returns>
    public static Tensor GlobalNorm(State tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return Optax.globalNorm(tensors);
    }

    /// <summary>Adds updates to parameters, key by key (Optax's <c>apply_updates</c>); both states are keyed alike.</summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="updates">The updates a transformation returned.</param>
    /// <returns>The new parameters.</returns>
    public static State ApplyUpdates(State parameters, State updates)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(updates);
        return Optax.applyUpdates(parameters, updates);
    }
}
