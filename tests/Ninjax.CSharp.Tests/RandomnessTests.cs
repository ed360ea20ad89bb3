using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>What the README's C# section promises about randomness: the same seed gives the same noise, and a seed per
/// call gives each training step fresh noise.</summary>
public class RandomnessTests
{
    [Fact]
    public void A_seed_per_call_gives_each_step_fresh_noise_and_the_same_seed_the_same()
    {
        var sampler = new Sampler("noise");
        var draw = Nj.Pure(sampler.Draw);
        var (_, first) = draw(States.Empty, seed: 0);
        var (_, again) = draw(States.Empty, seed: 0);
        SameTensor(first, again, "the same seed, the same noise");
        var steps = Enumerable.Range(0, 5).Select(step => draw(States.Empty, seed: step).Output).ToArray();
        for (var i = 0; i < steps.Length; i++)
        for (var j = i + 1; j < steps.Length; j++)
            Assert.False(Identical(steps[i], steps[j]), $"steps {i} and {j} drew the same noise");
        // Two draws in one call differ too (a counter advances).
        var (_, pair) = Nj.Pure(() => stack([sampler.Draw(), sampler.Draw()]))(States.Empty, seed: 0);
        Assert.False(Identical(pair[0], pair[1]));
    }
}
