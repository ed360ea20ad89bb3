using System.Globalization;

namespace Gan;

/// <summary>The command line of the GAN program.</summary>
/// <param name="Phase">all (train, then sample), train or sample.</param>
/// <param name="Epochs">Passes over the training images.</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="Seed">The seed of initialisation, shuffling and noise.</param>
/// <param name="Checkpoint">The checkpoint the training phase writes and the sampling phase reads.</param>
/// <param name="Classifier">The digits classifier's checkpoint (written by the digits trainer's --save).</param>
/// <param name="Grid">The PNG the sampling phase writes.</param>
/// <param name="DataFolder">The folder holding optdigits.tra.</param>
/// <param name="Threads">TorchSharp's intra-op threads.</param>
/// <param name="Plain">Plain progress lines instead of a progress bar.</param>
public sealed record GanSettings(
    string Phase = "all",
    int Epochs = 20,
    int BatchSize = 64,
    long Seed = 0,
    string Checkpoint = "artifacts/gan.safetensors",
    string Classifier = "artifacts/digits.safetensors",
    string Grid = "artifacts/gan-digits.png",
    string DataFolder = "",
    int Threads = 1,
    bool Plain = false)
{
    /// <summary>What the program does and its flags.</summary>
    public const string Usage = """
        usage: gan [--phase all|train|sample] [--epochs N] [--batch-size N] [--seed N] [--checkpoint PATH]
                   [--classifier PATH] [--grid PATH] [--data FOLDER] [--threads N] [--plain]

        Trains a conditional GAN on the 8x8 digits (phase train) and saves its checkpoint, then loads the checkpoint
        into a fresh state, draws 100 images of each digit, scores them with the digits classifier and writes a grid
        of samples (phase sample). Defaults: --phase all --epochs 20 --batch-size 64 --seed 0
        --checkpoint artifacts/gan.safetensors --classifier artifacts/digits.safetensors --grid artifacts/gan-digits.png
        --data data/optdigits of this checkout, --threads 1; plain lines when the output is redirected.
        """;

    /// <summary>Reads the command line; prints the problem and the usage and returns null on a bad one.</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The settings, or null.</returns>
    public static GanSettings? Parse(string[] args)
    {
        var settings = new GanSettings(Plain: Console.IsOutputRedirected);
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                int Positive() => int.TryParse(Value(), CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n : throw new ArgumentException($"{args[i - 1]} needs a positive whole number; it was '{args[i]}'.");
                settings = args[i] switch
                {
                    "--phase" => settings with { Phase = Value() is "all" or "train" or "sample" ? args[i] : throw new ArgumentException($"--phase is all, train or sample; it was '{args[i]}'.") },
                    "--epochs" => settings with { Epochs = Positive() },
                    "--batch-size" => settings with { BatchSize = Positive() },
                    "--seed" => settings with { Seed = long.TryParse(Value(), CultureInfo.InvariantCulture, out var s) ? s : throw new ArgumentException($"--seed needs a whole number; it was '{args[i]}'.") },
                    "--checkpoint" => settings with { Checkpoint = Value() },
                    "--classifier" => settings with { Classifier = Value() },
                    "--grid" => settings with { Grid = Value() },
                    "--data" => settings with { DataFolder = Value() },
                    "--threads" => settings with { Threads = Positive() },
                    "--plain" => settings with { Plain = true },
                    _ => throw new ArgumentException($"Unknown argument '{args[i]}'."),
                };
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"gan: {e.Message}");
            Console.Error.WriteLine(Usage);
            return null;
        }
        return settings.DataFolder.Length > 0 ? settings : settings with { DataFolder = Digits.Data.defaultFolder() };
    }
}
