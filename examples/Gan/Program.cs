// The main job's second part: a conditional GAN on the 8x8 digits, written in C#. It trains (phase "train"), saves
// one checkpoint, then loads it into a fresh state and only samples (phase "sample"): 1,000 images, 100 of each
// digit, scored by the digits classifier that the first part of the main job trained and saved.
using System.Diagnostics;
using System.Globalization;
using Gan;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(GanSettings.Usage);
    return 0;
}
var settings = GanSettings.Parse(args);
if (settings is null)
    return 2;
set_num_threads(settings.Threads);
try
{
    if (settings.Phase is "all" or "train")
        TrainPhase(settings);
    if (settings.Phase is "all" or "sample")
        SamplePhase(settings);
    return 0;
}
catch (Exception e) when (e is IOException or InvalidOperationException or ArgumentException)
{
    Console.Error.WriteLine($"gan: {e.Message}");
    return 1;
}

static void TrainPhase(GanSettings settings)
{
    var data = Digits.Data.load(Path.Combine(settings.DataFolder, "optdigits.tra"));
    var images = GanTraining.ToGan(data.Images);
    var gan = new ConditionalGan();
    var state = GanTraining.Init(gan, images, data.Labels, settings.Seed);
    var stepsPerEpoch = (int)(images.size(0) / settings.BatchSize);
    Console.WriteLine($"Training the conditional GAN on {images.size(0)} images ({stepsPerEpoch} steps per epoch).");
    // Training time: the epochs, from the first step (with its warm-up) to the last.
    var clock = Stopwatch.StartNew();
    string Line(EpochReport r) => string.Format(CultureInfo.InvariantCulture,
        "epoch {0,2}/{1}  discriminator loss {2:F4}  generator loss {3:F4}  ({4:F1} s)",
        r.Epoch, settings.Epochs, r.DiscriminatorLoss, r.GeneratorLoss, clock.Elapsed.TotalSeconds);
    if (settings.Plain)
    {
        state = GanTraining.Train(gan, state, images, data.Labels, settings.Epochs, settings.BatchSize, settings.Seed,
            onEpoch: r => Console.WriteLine(Line(r)));
    }
    else
    {
        state = AnsiConsole.Progress().Start(ctx =>
        {
            var task = ctx.AddTask("training", maxValue: stepsPerEpoch * settings.Epochs);
            return GanTraining.Train(gan, state, images, data.Labels, settings.Epochs, settings.BatchSize, settings.Seed,
                onStep: () => task.Increment(1),
                onEpoch: r =>
                {
                    task.Description = $"epoch {r.Epoch}";
                    AnsiConsole.MarkupLine(Markup.Escape(Line(r)));
                });
        });
    }
    var seconds = clock.Elapsed.TotalSeconds;
    GanTraining.Save(settings.Checkpoint, state, (long)stepsPerEpoch * settings.Epochs);
    Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "GAN training took {0:F1} s; checkpoint written to {1}", seconds, settings.Checkpoint));
}

static void SamplePhase(GanSettings settings)
{
    if (!File.Exists(settings.Checkpoint))
        throw new IOException($"There is no GAN checkpoint at {settings.Checkpoint}: train first (--phase train or all).");
    if (!File.Exists(settings.Classifier))
        throw new IOException($"There is no classifier checkpoint at {settings.Classifier}: train one with the digits trainer's --save {settings.Classifier} (dotnet fsi build.fsx -t Run does both).");
    // A fresh model and a state read from the checkpoint alone: nothing is carried over from training.
    var gan = new ConditionalGan();
    var state = GanTraining.Load(settings.Checkpoint, gan);
    var classify = Digits.Program.loadClassifier(settings.Classifier);
    var (images, labels) = GanTraining.SampleEvenly(gan, state, perDigit: 100, seed: settings.Seed + 1);
    var predicted = classify(images);
    var perDigit = Enumerable.Range(0, 10).Select(d =>
        predicted.narrow(0, d * 100, 100).eq(d).to_type(ScalarType.Float64).mean().ToDouble());
    Console.WriteLine("per digit: " + string.Join("  ", perDigit.Select((a, d) => string.Format(CultureInfo.InvariantCulture, "{0}: {1:F2}", d, a))));
    // Ten samples of each digit, one digit per row.
    var shown = images.view(10, 100, 64).narrow(1, 0, 10).reshape(100, 64);
    var (width, height, pixels) = SampleGrid.Render(shown, rows: 10, columns: 10);
    Png.Write(settings.Grid, width, height, pixels);
    Console.WriteLine($"samples written to {settings.Grid}");
    Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "gan conditional accuracy: {0:F4}",
        GanTraining.ConditionalAccuracy(classify, images, labels)));
}
