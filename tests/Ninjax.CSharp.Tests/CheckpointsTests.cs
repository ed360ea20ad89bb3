using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Checkpoints from C#: save with a step and strings, load as is or into an expected state with every problem
/// listed, metadata as <c>long? Step</c> and a string dictionary; files the F# API reads alike.</summary>
public sealed class CheckpointsTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("ninjax-cs-checkpoints-").FullName;

    /// <summary>Removes the test's files.</summary>
    public void Dispose() => Directory.Delete(folder, true);

    private string PathOf(string name) => Path.Combine(folder, name);

    private static State Sample() => States.From(("model/w", arange(6f).reshape(2, 3)), ("model/count", tensor(7L)));

    [Fact]
    public void A_state_round_trips_with_its_step_and_strings()
    {
        var path = PathOf("a.safetensors");
        Checkpoints.Save(path, Sample(), step: 1200, strings: new Dictionary<string, string> { ["run"] = "gan", ["seed"] = "0" });
        var (state, metadata) = Checkpoints.Load(path);
        SameState(Sample(), state, "loaded");
        Assert.Equal(1200L, metadata.Step);
        Assert.Equal("gan", metadata.Strings["run"]);
        Assert.Equal(new[] { "run", "seed" }, metadata.Strings.Keys);
        // Metadata compares by content: loading twice gives equal metadata.
        Assert.Equal(metadata, Checkpoints.Load(path).Metadata);
        Assert.Equal(new CheckpointInfo(1200, new Dictionary<string, string> { ["seed"] = "0", ["run"] = "gan" }), metadata);
        Assert.NotEqual(new CheckpointInfo(1201, metadata.Strings), metadata);

        // The F# API reads the same file and the same metadata.
        var viaFSharp = Checkpoint.load(path);
        SameState(state, viaFSharp.Item1, "read by F#");
        Assert.Equal(1200L, viaFSharp.Item2.Step.Value);
    }

    [Fact]
    public void A_checkpoint_without_a_step_has_a_null_step()
    {
        var path = PathOf("b.safetensors");
        Checkpoints.Save(path, Sample());
        var (_, metadata) = Checkpoints.Load(path);
        Assert.Null(metadata.Step);
        Assert.Empty(metadata.Strings);
        var (inspected, entries) = Checkpoints.Inspect(path);
        Assert.Equal(CheckpointInfo.Empty.Step, inspected.Step);
        Assert.Equal(new[] { "model/count", "model/w" }, entries.Select(e => e.Key));
        Assert.Equal(new long[] { 2, 3 }, entries[1].Shape);
        Assert.Equal(ScalarType.Int64, entries[0].Dtype);
        Checkpoints.Save(path, Sample(), new CheckpointInfo(5, new Dictionary<string, string> { ["note"] = "x" }));
        Assert.Equal(5L, Checkpoints.Load(path).Metadata.Step);
    }

    [Fact]
    public void Loading_into_an_expected_state_lists_every_problem_and_loads_nothing()
    {
        var path = PathOf("c.safetensors");
        Checkpoints.Save(path, Sample());
        var expected = States.From(("model/w", zeros(3, 3)), ("model/bias", zeros(3)), ("model/count", tensor(0L)));
        var problems = Checkpoints.Check(expected, path);
        Assert.Equal(2, problems.Count); // model/bias missing, model/w of another shape
        var e = Raises<CheckpointMismatchException>(() => Checkpoints.LoadInto(expected, path));
        Assert.Equal(problems, e.Problems);
        Assert.Contains(e.Problems, p => p is CheckpointMismatch.MissingKey { Key: "model/bias" });
        var shape = e.Problems.OfType<CheckpointMismatch.ShapeMismatch>().Single();
        Assert.Equal("model/w", shape.Key);
        Assert.Equal(new long[] { 3, 3 }, shape.Expected);
        Assert.Equal(new long[] { 2, 3 }, shape.Actual);
        Assert.Contains("key 'model/w' has shape [2, 3] in the file, expected [3, 3]", e.Message);

        var fits = States.From(("model/w", zeros(2, 3)), ("model/count", tensor(0L)));
        var (loaded, _) = Checkpoints.LoadInto(fits, path);
        SameState(Sample(), loaded, "loaded into a fitting state");
    }

    [Fact]
    public void The_reserved_step_string_is_refused_in_CSharp_terms()
    {
        var e = Raises<ArgumentException>(() =>
            Checkpoints.Save(PathOf("d.safetensors"), Sample(), strings: new Dictionary<string, string> { ["step"] = "1" }));
        Assert.Contains("pass it as step:", e.Message);
        Assert.DoesNotContain("CheckpointMetadata", e.Message);
        Assert.Contains(ScalarType.Float32, Checkpoints.SupportedDtypes);
    }
}
