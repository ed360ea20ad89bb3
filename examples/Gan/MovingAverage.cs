using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Gan;

/// <summary>An exponential moving average of one module's entries kept in another module of the same shape, in the
/// state like everything else (so checkpoints carry it). The average's entries are buffers: state that is not trained,
/// which module targets and the summary's trainable count leave out.</summary>
public static class MovingAverage
{
    /// <summary>Moves every floating-point entry of <paramref name="average"/> towards the same entry of
    /// <paramref name="source"/> (<c>average = decay * average + (1 - decay) * source</c>) and copies the others (such as
    /// BatchNorm's step counter). On first use the average starts as a copy of the source. Call it inside a purified
    /// call.</summary>
    /// <param name="average">The module that holds the average, such as a second generator network.</param>
    /// <param name="source">The module averaged.</param>
    /// <param name="decay">How much of the average each update keeps, in [0, 1).</param>
    public static void Update(Module average, Module source, double decay)
    {
        ArgumentNullException.ThrowIfNull(average);
        ArgumentNullException.ThrowIfNull(source);
        if (!(decay >= 0 && decay < 1))
            throw new ArgumentOutOfRangeException(nameof(decay), decay, "The decay of a moving average must lie in [0, 1).");
        using var _ = no_grad();
        // lerp's weight as a tensor (TorchSharp has no scalar overload), made once per update and dtype.
        Tensor? weight = null;
        // Under no_grad nothing here joins a graph, so the source's tensors are read as they are (no detach).
        foreach (var (key, current) in source.Values)
        {
            var old = average.Buffer(key, () => current.clone());
            if (!current.is_floating_point())
            {
                average.Put(key, current.clone());
                continue;
            }
            weight = weight is not null && weight.dtype == old.dtype ? weight : tensor(1 - decay, dtype: old.dtype);
            // One kernel per entry, lerp(old, current, w) = old + (current - old) * w: in place when the call owns
            // the average's tensor (a donating loop), into a new tensor otherwise; the same numbers either way.
            average.Put(key, Nj.MayUpdateInPlace(old) ? old.lerp_(current, weight) : lerp(old, current, weight));
        }
    }
}
