using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A generator that draws latent vectors from the call's randomness.</summary>
public sealed class LatentSampler : Module
{
    /// <summary>A sampler named <paramref name="name"/>.</summary>
    public LatentSampler(string name) : base(name) { }

    /// <summary>Latent vectors, plus a counter so that the module has state.</summary>
    public Tensor Sample()
    {
        Put("calls", Get("calls", () => zeros(Array.Empty<long>(), dtype: int64)) + 1);
        return randn(new long[] { 2, 3 }, generator: Nj.Rng());
    }
}

/// <summary>The random stream in the state, from C#.</summary>
public class RngStreamTests
{
    [Fact]
    public void A_loop_with_a_stream_gets_fresh_latent_vectors_every_step()
    {
        var sampler = new LatentSampler("gen");
        var state = Nj.Init(sampler.Sample, rngStream: "rng")(States.Empty, seed: 0);
        Assert.Equal(new[] { "gen/calls", "rng/count", "rng/seed" }, state.Keys);
        var sample = Nj.Pure(sampler.Sample, rngStream: "rng");
        var (s1, z1) = sample(state);
        var (s2, z2) = sample(s1);
        Assert.False(Identical(z1, z2), "fresh latent vectors each step");
        SameTensor(tensor(2L), s2["rng/count"], "the stream advanced once per call");
        var (_, again) = sample(s1);
        SameTensor(z2, again, "the same state draws the same");
        // Without the stream, the same seed each step gives the same vectors.
        var plain = Nj.Pure(sampler.Sample);
        var (p1, a) = plain(state, seed: 0);
        var (_, b) = plain(p1, seed: 0);
        SameTensor(a, b, "one seed, the same noise");
    }

    [Fact]
    public void TryRng_gives_null_without_a_seed()
    {
        var (_, none) = Nj.Pure(() => Nj.TryRng() is null)(States.Empty);
        Assert.True(none);
        var (_, some) = Nj.Pure(() => Nj.TryRng() is not null)(States.Empty, seed: 1);
        Assert.True(some);
    }

    [Fact]
    public void A_missing_stream_is_named_in_CSharp_terms()
    {
        var sampler = new LatentSampler("gen2");
        var state = Nj.Init(sampler.Sample)(States.Empty, seed: 0);
        var error = Raises<KeyNotFoundException>(() => Nj.Pure(sampler.Sample, rngStream: "rng")(state));
        Assert.Contains("rng/seed", error.Message);
        Assert.Contains("Nj.Init(f, rngStream: \"rng\")", error.Message);
    }
}
