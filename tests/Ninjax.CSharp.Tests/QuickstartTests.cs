using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Runs examples/Quickstart.CSharp.</summary>
public class QuickstartTests
{
    private static readonly string[] Parameters = { "model/bias", "model/h1/b", "model/h1/w", "model/h2/b", "model/h2/w", "model/h3/w" };

    [Fact]
    public void The_quickstart_starts_with_a_zero_bias_and_its_loss_falls_under_Adam()
    {
        var log = new StringWriter();
        var result = Quickstart.Program.Run(log);
        SameTensor(zeros(3), result.InitialBias, "bias after init");
        Assert.Equal(10, result.Losses.Count);
        // Adam does not lower the loss at every step, but it lowers it far below where it started.
        Assert.All(result.Losses.Skip(1), l => Assert.True(l < result.Losses[0], string.Join(", ", result.Losses)));
        Assert.True(result.Losses[^1] < result.Losses[0] * 0.1f, string.Join(", ", result.Losses));

        // The parameters, and the optimizer's state under model/opt: the step count, the learning rate, the
        // fingerprint of its targets, and Adam's two moments per parameter.
        var optimizer = new[] { "model/opt/count", "model/opt/learning_rate", "model/opt/targets" }
            .Concat(Parameters.Select(k => $"model/opt/mu/{k}"))
            .Concat(Parameters.Select(k => $"model/opt/nu/{k}"));
        Assert.Equal(Parameters.Concat(optimizer).OrderBy(k => k, StringComparer.Ordinal), result.State.Keys);
        Assert.Equal(10L, result.State["model/opt/count"].item<long>());
        Assert.Equal(0.01, result.State["model/opt/learning_rate"].item<double>());

        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("[0, 0, 0]", lines[0].Trim());
        Assert.Equal(10, lines.Count(l => l.StartsWith("Loss: ")));
    }
}
