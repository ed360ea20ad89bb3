using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Runs examples/Quickstart.CSharp.</summary>
public class QuickstartTests
{
    [Fact]
    public void The_quickstart_starts_with_a_zero_bias_and_its_loss_falls()
    {
        var log = new StringWriter();
        var result = Quickstart.Program.Run(log);
        SameTensor(zeros(3), result.InitialBias, "bias after init");
        Assert.Equal(10, result.Losses.Count);
        Assert.All(result.Losses.Zip(result.Losses.Skip(1)), p => Assert.True(p.Second < p.First, string.Join(", ", result.Losses)));
        Assert.True(result.Losses[^1] < result.Losses[0] * 0.5f, string.Join(", ", result.Losses));
        Assert.Equal(new[] { "model/bias", "model/h1/b", "model/h1/w", "model/h2/b", "model/h2/w", "model/h3/w" }, result.State.Keys);
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("[0, 0, 0]", lines[0].Trim());
        Assert.Equal(10, lines.Count(l => l.StartsWith("Loss: ")));
    }
}
