using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>State as a C# dictionary.</summary>
public class StateTests
{
    [Fact]
    public void A_state_is_built_from_a_dictionary_and_reads_like_one()
    {
        var dict = new Dictionary<string, Tensor> { ["model/w"] = ones(2), ["model/b"] = zeros(1) };
        IReadOnlyDictionary<string, Tensor> state = States.FromDictionary(dict);
        Assert.Equal(2, state.Count);
        Assert.Equal(new[] { "model/b", "model/w" }, state.Keys);
        Assert.True(state.ContainsKey("model/w"));
        Assert.True(state.TryGetValue("model/b", out var b));
        SameTensor(zeros(1), b, "TryGetValue");
        Assert.False(state.TryGetValue("model/x", out _));
        Assert.Equal(new[] { "model/b", "model/w" }, state.Select(kv => kv.Key));
        var missing = Assert.Throws<KeyNotFoundException>(() => state["model/x"]);
        Assert.Contains("'model/x'", missing.Message);
    }

    [Fact]
    public void A_state_runs_a_purified_function_built_from_a_dictionary()
    {
        var counter = new Counter("c");
        var state = States.FromDictionary(new Dictionary<string, Tensor> { ["c/count"] = full(1, 41f) });
        var (_, count) = Nj.Pure(counter.Increment)(state);
        Assert.Equal(42f, count.item<float>());
    }

    [Fact]
    public void Bad_keys_and_repeated_keys_are_rejected_with_the_key_named()
    {
        var bad = Assert.Throws<ArgumentException>(() => States.FromDictionary(new Dictionary<string, Tensor> { ["model//w"] = ones(1) }));
        Assert.Contains("model//w", bad.Message);
        var twice = Assert.Throws<ArgumentException>(() => States.From(("a", ones(1)), ("a", zeros(1))));
        Assert.Contains("'a' appears twice", twice.Message);
        Assert.Throws<ArgumentException>(() => States.Empty.With("a b", ones(1)));
    }
}
