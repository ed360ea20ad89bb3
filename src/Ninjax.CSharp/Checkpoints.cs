using System.Collections.Immutable;
using Microsoft.FSharp.Core;
using static TorchSharp.torch;

namespace Ninjax.CSharp;

/// <summary>What a checkpoint stores besides its tensors: the training step, if any, and free-form strings (run name,
/// config, git commit, ...), the safetensors file's string table.</summary>
/// <param name="Step">The training step the checkpoint was taken at; null when it has none.</param>
/// <param name="Strings">Other strings kept with the tensors; the name <c>step</c> is reserved for <paramref name="Step"/>.</param>
public sealed record CheckpointInfo(long? Step, IReadOnlyDictionary<string, string> Strings)
{
    /// <summary>No step and no strings.</summary>
    public static CheckpointInfo Empty { get; } = new(null, ImmutableSortedDictionary<string, string>.Empty);

    /// <summary>True when both have the same step and the same strings (compared by content, not by dictionary).</summary>
    /// <param name="other">The metadata to compare with.</param>
    /// <returns>Whether they are equal.</returns>
    public bool Equals(CheckpointInfo? other) =>
        other is not null && Step == other.Step && SameStrings(Strings, other.Strings);

    /// <summary>A hash of the step and the strings.</summary>
    /// <returns>The hash.</returns>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Step);
        foreach (var (name, value) in (Strings ?? ImmutableSortedDictionary<string, string>.Empty).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.Add(name);
            hash.Add(value);
        }
        return hash.ToHashCode();
    }

    private static bool SameStrings(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        a ??= ImmutableSortedDictionary<string, string>.Empty;
        b ??= ImmutableSortedDictionary<string, string>.Empty;
        return a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);
    }

    /// <summary>The F# metadata as C# metadata.</summary>
    internal static CheckpointInfo Of(CheckpointMetadata metadata) =>
        new(FSharpOption<long>.get_IsSome(metadata.Step) ? metadata.Step.Value : null,
            ImmutableSortedDictionary.CreateRange(StringComparer.Ordinal, metadata.Strings));

    /// <summary>This metadata as the F# metadata the core writes.</summary>
    internal CheckpointMetadata ToFSharp()
    {
        var metadata = CheckpointMetadataModule.empty;
        if (Step is { } step) metadata = CheckpointMetadataModule.withStep(step, metadata);
        foreach (var (name, value) in Strings ?? ImmutableSortedDictionary<string, string>.Empty)
            metadata = CheckpointMetadataModule.withString(name, value, metadata);
        return metadata;
    }
}

/// <summary>Checkpoints on disk in the safetensors format, readable by Python's safetensors, PyTorch and JAX: save a
/// state with its step and strings, load it back as it is, or load it into an expected state (such as
/// <c>Nj.Init</c>'s) with every missing key, unexpected key and shape or dtype mismatch listed at once. Every member
/// forwards to the F# <c>Checkpoint</c> module.</summary>
public static class Checkpoints
{
    /// <summary>The dtypes a checkpoint can hold (every dtype but complex128 and the quantized ones).</summary>
    public static IReadOnlyList<ScalarType> SupportedDtypes => Checkpoint.supportedDtypes.ToArray();

    /// <summary>Saves a state to a safetensors file, atomically: written under a temporary name in the same folder,
    /// flushed, then renamed over <paramref name="path"/>, so a crash part way leaves any previous checkpoint intact.
    /// Tensors on other devices are copied to the CPU to be written.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="state">The state to save.</param>
    /// <param name="step">The training step to store with it, if any.</param>
    /// <param name="strings">Other strings to store with it; the name <c>step</c> is reserved.</param>
    public static void Save(string path, State state, long? step = null, IReadOnlyDictionary<string, string>? strings = null) =>
        Save(path, state, new CheckpointInfo(step, strings ?? ImmutableSortedDictionary<string, string>.Empty));

    /// <summary>Saves a state and its metadata to a safetensors file, atomically (see
    /// <see cref="Save(string, State, long?, IReadOnlyDictionary{string, string}?)"/>).</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="state">The state to save.</param>
    /// <param name="metadata">The step and strings to store with it.</param>
    public static void Save(string path, State state, CheckpointInfo metadata)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(metadata);
        Checkpoint.save(path, state, metadata.ToFSharp());
    }

    /// <summary>Loads a checkpoint as it is, onto the CPU. InvalidDataException naming the file when it is truncated or
    /// corrupted; FileNotFoundException when it does not exist.</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The state and its metadata.</returns>
    public static (State State, CheckpointInfo Metadata) Load(string path)
    {
        var loaded = Checkpoint.load(path);
        return (loaded.Item1, CheckpointInfo.Of(loaded.Item2));
    }

    /// <summary>Loads a checkpoint that must fit <paramref name="expected"/> (the same keys, shapes and dtypes), each
    /// tensor onto the device of its expected entry. When anything differs, <see cref="CheckpointMismatchException"/>
    /// lists every problem in its <c>Problems</c>, and nothing is loaded.</summary>
    /// <param name="expected">The state the file must fit, such as <c>Nj.Init(model.Train)(States.Empty, x, seed: 0)</c>.</param>
    /// <param name="path">The file to read.</param>
    /// <returns>The state and its metadata.</returns>
    public static (State State, CheckpointInfo Metadata) LoadInto(State expected, string path)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var loaded = Checkpoint.loadInto(expected, path);
        return (loaded.Item1, CheckpointInfo.Of(loaded.Item2));
    }

    /// <summary>Every way a checkpoint differs from an expected state (missing and unexpected keys, shape and dtype
    /// mismatches), in key order; empty when it fits. Reads only the file's header.</summary>
    /// <param name="expected">The state the file should fit.</param>
    /// <param name="path">The file to check.</param>
    /// <returns>The problems, each naming its key.</returns>
    public static IReadOnlyList<CheckpointMismatch> Check(State expected, string path)
    {
        ArgumentNullException.ThrowIfNull(expected);
        return Checkpoint.check(expected, path).ToArray();
    }

    /// <summary>The metadata and the entries (key, dtype, shape) a checkpoint holds, read from its header alone.</summary>
    /// <param name="path">The file to inspect.</param>
    /// <returns>The metadata and the entries in key order.</returns>
    public static (CheckpointInfo Metadata, IReadOnlyList<CheckpointEntry> Entries) Inspect(string path)
    {
        var inspected = Checkpoint.inspect(path);
        return (CheckpointInfo.Of(inspected.Item1), inspected.Item2.ToArray());
    }
}
