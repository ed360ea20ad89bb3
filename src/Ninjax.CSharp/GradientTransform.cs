namespace Ninjax.CSharp;

/// <summary>A gradient transformation (an optimizer such as Adam, or a step of one such as gradient clipping), made by
/// <see cref="Optimizers"/> and used by an <see cref="OptimizerModule"/>. Opaque to C#: it holds the Ninjax.Fs
/// transformation, whose init and update functions are pure functions over states.</summary>
public sealed class GradientTransform
{
    internal GradientTransform(GradientTransformation transformation) => Transformation = transformation;

    /// <summary>The F# transformation this wraps.</summary>
    internal GradientTransformation Transformation { get; }

    /// <summary>The optimizer state for <paramref name="parameters"/> (Optax's <c>init</c>): moments, the step count, ...
    /// keyed by parameter key (<c>mu/model/h1/w</c>, <c>count</c>). An <see cref="OptimizerModule"/> does this for you;
    /// call it to use the transformation by hand.</summary>
    /// <param name="parameters">The parameters, keyed as <c>Nj.Grad</c> returns them.</param>
    /// <returns>The initial optimizer state.</returns>
    public State Init(State parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return Transformation.Init.Invoke(parameters);
    }

    /// <summary>Turns gradients into updates (Optax's <c>update</c>): pure, it changes none of its inputs. Add the updates
    /// to the parameters with <see cref="Optimizers.ApplyUpdates"/>.</summary>
    /// <param name="grads">The gradients (or the updates of the transformation before this one in a chain).</param>
    /// <param name="state">The optimizer state, from <see cref="Init"/> or the previous update.</param>
    /// <param name="parameters">The parameters, keyed like <paramref name="grads"/>.</param>
    /// <returns>The updates and the next optimizer state.</returns>
    public (State Updates, State State) Update(State grads, State state, State parameters)
    {
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(parameters);
        var result = Microsoft.FSharp.Core.FSharpFunc<State, State>.InvokeFast(Transformation.Update, grads, state, parameters);
        return (result.Item1, result.Item2);
    }

    /// <summary>The F# transformation of <paramref name="transform"/>, with a null check naming the parameter.</summary>
    internal static GradientTransformation Unwrap(GradientTransform? transform, string parameter)
    {
        ArgumentNullException.ThrowIfNull(transform, parameter);
        return transform.Transformation;
    }
}
