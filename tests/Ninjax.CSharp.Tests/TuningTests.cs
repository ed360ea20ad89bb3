using Xunit;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>The process-wide tunings from C#: applied on demand, described line by line, and products still exact.</summary>
public class TuningTests
{
    [Fact]
    public void Apply_makes_the_settings_once_and_Describe_says_what_each_came_to()
    {
        Tuning.Apply();
        Tuning.Apply();
        var lines = Tuning.Describe();
        Assert.Equal(2, lines.Count);
        Assert.StartsWith("glibc heap: ", lines[0]);
        Assert.StartsWith("MKL kernels: ", lines[1]);
        // Whatever MKL runs, a product agrees with float64 arithmetic to float32's precision.
        manual_seed(5);
        var a = randn(64, 256);
        var b = randn(256, 32);
        var error = (a.matmul(b).to_type(float64) - a.to_type(float64).matmul(b.to_type(float64))).abs().max().item<double>();
        Assert.True(error < 1e-3, $"product error {error}");
    }
}
