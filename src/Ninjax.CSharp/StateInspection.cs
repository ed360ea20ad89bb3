using System.Text.RegularExpressions;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>How two states differ (<see cref="StateInspection.Diff"/>): keys added, removed, changed (with how) and
/// unchanged, each in key order, and the largest absolute value change.</summary>
public sealed class StateDifference
{
    internal StateDifference(StateDiff diff)
    {
        Added = diff.Added.ToArray();
        Removed = diff.Removed.ToArray();
        Changed = diff.Changed.Select(c => (c.Item1, c.Item2)).ToArray();
        Unchanged = diff.Unchanged.ToArray();
        MaxAbsChange = diff.MaxAbsChange;
    }

    /// <summary>Keys only in the second state.</summary>
    public IReadOnlyList<string> Added { get; }

    /// <summary>Keys only in the first state.</summary>
    public IReadOnlyList<string> Removed { get; }

    /// <summary>Keys in both whose tensors differ, with how: <see cref="EntryChange.ValuesChanged"/> (and the largest
    /// absolute difference), <see cref="EntryChange.ShapeChanged"/> or <see cref="EntryChange.DtypeChanged"/>.</summary>
    public IReadOnlyList<(string Key, EntryChange Change)> Changed { get; }

    /// <summary>Keys in both with identical shape, dtype and values (NaNs count as equal).</summary>
    public IReadOnlyList<string> Unchanged { get; }

    /// <summary>The largest absolute value change over all changed values; 0 when there are none.</summary>
    public double MaxAbsChange { get; }

    /// <summary>True when the states hold the same keys with identical tensors.</summary>
    public bool IsEmpty => Added.Count == 0 && Removed.Count == 0 && Changed.Count == 0;
}

/// <summary>Looking inside states and reshaping them from C#: selecting, merging, comparing, moving, casting, and the
/// summary table. Each forwards to the F# <c>StateOps</c> and <c>Summary</c> modules and returns new states.</summary>
public static class StateInspection
{
    /// <summary>The entries at or under any of the given key prefixes (a key matches itself and everything below).</summary>
    /// <param name="state">The state to select from.</param>
    /// <param name="prefixes">Keys such as <c>model/gen</c>.</param>
    /// <returns>The new state.</returns>
    public static State SelectPrefixes(this State state, params string[] prefixes)
    {
        ArgumentNullException.ThrowIfNull(prefixes);
        return StateOps.selectPrefixes(prefixes, state);
    }

    /// <summary>The entries whose key <paramref name="regex"/> matches (anywhere in the key, unless anchored).</summary>
    /// <param name="state">The state to select from.</param>
    /// <param name="regex">The expression keys must match.</param>
    /// <returns>The new state.</returns>
    public static State SelectRegex(this State state, Regex regex) => StateOps.selectRegex(regex, state);

    /// <summary>The entries whose key matches a regular-expression pattern; ArgumentException naming the pattern when it
    /// is malformed.</summary>
    /// <param name="state">The state to select from.</param>
    /// <param name="pattern">The pattern keys must match, such as <c>^model/gen/</c>.</param>
    /// <returns>The new state.</returns>
    public static State SelectPattern(this State state, string pattern) => StateOps.selectPattern(pattern, state);

    /// <summary>Both states' entries; ArgumentException listing the keys both hold (<see cref="States.Merge"/> lets
    /// <paramref name="other"/> win instead).</summary>
    /// <param name="state">The first state.</param>
    /// <param name="other">The second state.</param>
    /// <returns>The new state.</returns>
    public static State MergeDisjoint(this State state, State other) => StateOps.mergeDisjoint(state, other);

    /// <summary>Both states' entries; where both hold a key, <paramref name="resolve"/> gets the key and both tensors
    /// and returns the one to keep: <c>a.MergeWith(b, (key, x, y) => (x + y) / 2)</c>.</summary>
    /// <param name="state">The first state.</param>
    /// <param name="other">The second state.</param>
    /// <param name="resolve">Decides a key both hold.</param>
    /// <returns>The new state.</returns>
    public static State MergeWith(this State state, State other, Func<string, Tensor, Tensor, Tensor> resolve)
    {
        ArgumentNullException.ThrowIfNull(resolve);
        return StateOps.mergeWith(FuncConvert.FromFunc(resolve), state, other);
    }

    /// <summary>What changed from <paramref name="before"/> to <paramref name="after"/>: keys added, removed and
    /// changed, with the largest absolute change per changed key and overall (measured in float64).</summary>
    /// <param name="before">The earlier state.</param>
    /// <param name="after">The later state.</param>
    /// <returns>The differences.</returns>
    public static StateDifference Diff(this State before, State after) => new(StateOps.diff(before, after));

    /// <summary>Every tensor moved to <paramref name="device"/>; tensors already there are kept. The originals are not
    /// disposed: the caller still owns them.</summary>
    /// <param name="state">The state to move.</param>
    /// <param name="device">The device, such as <c>CUDA</c> or <c>CPU</c>.</param>
    /// <returns>The new state.</returns>
    public static State ToDevice(this State state, Device device) => StateOps.toDevice(device, state);

    /// <summary>Floating-point entries cast to <paramref name="dtype"/>; integer, bool and complex entries are kept.</summary>
    /// <param name="state">The state to cast.</param>
    /// <param name="dtype">A floating-point dtype (Float16, BFloat16, Float32, Float64).</param>
    /// <returns>The new state.</returns>
    public static State CastFloating(this State state, ScalarType dtype) => StateOps.castFloating(dtype, state);

    /// <summary>The state as a plain-text table (like Keras's summary): one line per module path and entry, indented by
    /// depth, with shape, dtype, elements and bytes, totals per module and overall. Given the model, it also tells each
    /// entry's kind (parameter, buffer, optimizer state, ...) and counts trainable parameters apart.</summary>
    /// <param name="state">The state to describe.</param>
    /// <param name="model">The top-level module the state belongs to, or null to describe the state alone.</param>
    /// <returns>The table.</returns>
    public static string Summary(this State state, Module? model = null) =>
        model is null ? Ninjax.Summary.render(state) : Ninjax.Summary.renderOf(model, state);

    /// <summary>The rows of the summary in tree order: a module's row (its path and the totals under it) comes before
    /// the rows under it; each entry's row has its shape, dtype and kind.</summary>
    /// <param name="state">The state to describe.</param>
    /// <param name="model">The top-level module the state belongs to, or null (then every entry is Unclassified).</param>
    /// <returns>The rows.</returns>
    public static IReadOnlyList<SummaryRow> SummaryRows(this State state, Module? model = null) =>
        (model is null ? Ninjax.Summary.rows(state) : Ninjax.Summary.rowsOf(model, state)).ToArray();

    /// <summary>The entries, elements, trainable parameters (counted only when the model is given) and bytes of the
    /// whole state.</summary>
    /// <param name="state">The state to count.</param>
    /// <param name="model">The top-level module the state belongs to, or null.</param>
    /// <returns>The totals.</returns>
    public static SizeTotals Totals(this State state, Module? model = null) =>
        model is null ? Ninjax.Summary.totals(state) : Ninjax.Summary.totalsOf(model, state);
}
