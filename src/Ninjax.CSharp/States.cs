using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>Building and transforming states from C#. A <see cref="State"/> is an immutable
/// <see cref="IReadOnlyDictionary{TKey, TValue}"/> from keys to tensors; these helpers forward to the
/// F# <c>State</c> module and return new states that share structure with the old ones.</summary>
public static class States
{
    /// <summary>The empty state.</summary>
    public static State Empty => State.Empty;

    /// <summary>A state holding the entries of a dictionary, validating every key.</summary>
    /// <param name="entries">Keys such as <c>model/h1/w</c> and their tensors.</param>
    /// <returns>The state.</returns>
    public static State FromDictionary(IReadOnlyDictionary<string, Tensor> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        return StateModule.ofDictionary(entries);
    }

    /// <summary>A state holding the given entries, validating every key; a repeated key is an error.</summary>
    /// <param name="entries">Key/tensor pairs.</param>
    /// <returns>The state.</returns>
    public static State From(params (string Key, Tensor Value)[] entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        return StateModule.ofSeq(entries.Select(e => Tuple.Create(e.Key, e.Value)));
    }

    /// <summary>A state with every tensor replaced by <paramref name="mapping"/>'s result, as in a gradient step:
    /// <c>ps.Map((key, p) => p - lr * grads[key])</c>.</summary>
    /// <param name="state">The state to transform.</param>
    /// <param name="mapping">Gets each key and tensor, returns the new tensor.</param>
    /// <returns>The new state, with the same keys.</returns>
    public static State Map(this State state, Func<string, Tensor, Tensor> mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        return StateModule.map(FuncConvert.FromFunc(mapping), state);
    }

    /// <summary>The entries whose key and tensor satisfy <paramref name="predicate"/>.</summary>
    /// <param name="state">The state to filter.</param>
    /// <param name="predicate">Gets each key and tensor; true keeps the entry.</param>
    /// <returns>The new state.</returns>
    public static State Filter(this State state, Func<string, Tensor, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return StateModule.filter(FuncConvert.FromFunc(predicate), state);
    }

    /// <summary>The entries at or under a key prefix (a key matches itself and everything below it).</summary>
    /// <param name="state">The state to filter.</param>
    /// <param name="prefix">A key such as <c>model/h1</c>.</param>
    /// <returns>The new state.</returns>
    public static State Under(this State state, string prefix) => StateModule.under(prefix, state);

    /// <summary>Both states' entries; where both hold a key, <paramref name="other"/> wins.</summary>
    /// <param name="state">The base entries.</param>
    /// <param name="other">The entries that take precedence.</param>
    /// <returns>The new state.</returns>
    public static State Merge(this State state, State other) => StateModule.merge(state, other);

    /// <summary>The state with one entry added or replaced (plain data manipulation, not a module write).</summary>
    /// <param name="state">The state to extend.</param>
    /// <param name="key">The key, validated.</param>
    /// <param name="value">The tensor.</param>
    /// <returns>The new state.</returns>
    public static State With(this State state, string key, Tensor value) => StateModule.add(key, value, state);

    /// <summary>The state without an entry (unchanged when the key is absent).</summary>
    /// <param name="state">The state to shrink.</param>
    /// <param name="key">The key to remove.</param>
    /// <returns>The new state.</returns>
    public static State Without(this State state, string key) => StateModule.remove(key, state);
}
