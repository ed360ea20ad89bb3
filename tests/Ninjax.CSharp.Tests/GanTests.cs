using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Gan;
using Xunit;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A short version of the main job's conditional GAN (examples/Gan): one step of each part, a few epochs on
/// part of the digits, the checkpoint, sampling and the PNG grid.</summary>
public class GanTests
{
    private static readonly Lazy<(Tensor Images, Tensor Labels)> Digits = new(() =>
    {
        var split = global::Digits.Data.load(Path.Combine(global::Digits.Data.defaultFolder(), "optdigits.tra"));
        return (GanTraining.ToGan(split.Images[..512]), split.Labels[..512]);
    });

    private static (ConditionalGan Gan, State State) Fresh(long seed = 0)
    {
        var gan = new ConditionalGan(new GanOptions(Hidden: 64));
        var (images, labels) = Digits.Value;
        return (gan, GanTraining.Init(gan, images, labels, seed));
    }

    private static bool Under(string key, string prefix) => key.StartsWith(prefix + "/", StringComparison.Ordinal);

    [Fact]
    public void Init_creates_both_networks_both_optimizers_and_an_average_that_starts_as_the_generator()
    {
        var (gan, state) = Fresh();
        Assert.Contains(state.Keys, k => Under(k, "gan/generator/net"));
        Assert.Contains(state.Keys, k => Under(k, "gan/generator/opt"));
        Assert.Contains(state.Keys, k => Under(k, "gan/discriminator/opt"));
        Assert.Contains("gan/discriminator/embed", state.Keys);
        Assert.Contains("gan/generator/net/norm1/var", state.Keys);
        var averaged = state.Keys.Where(k => Under(k, "gan/average")).ToArray();
        Assert.Equal(state.Keys.Count(k => Under(k, "gan/generator/net")), averaged.Length);
        foreach (var key in averaged)
            Check.SameTensor(state[key.Replace("gan/average/", "gan/generator/net/")], state[key], key);
        // The average is not trained: its entries are buffers, and the model's parameters are the two players' own.
        Assert.All(averaged, k => Assert.Equal(EntryKind.Buffer, gan.EntryKinds(state)[k]));
        Assert.Empty(gan.Average.ParameterKeys(state));
        Assert.Equal(gan.Generator.Net.ParameterKeys(state).Concat(gan.Discriminator.ParameterKeys(state)).Order(), gan.ParameterKeys(state).Order());
    }

    [Fact]
    public void The_generator_step_goes_through_the_discriminator_and_updates_only_the_generator()
    {
        var (gan, state) = Fresh();
        var (_, labels) = Digits.Value;
        var step = Nj.PureTracked((Tensor z, Tensor y) => gan.Generator.Train(z, Condition.Of(y), gan.Discriminator).Metrics.Loss);
        var (after, loss, read, modified, created) = step(state, randn(64, 32), labels[..64]);
        Assert.Empty(created);
        Assert.Contains(read, k => Under(k, "gan/discriminator"));
        Assert.Contains(modified, k => Under(k, "gan/generator/net"));
        Assert.All(modified, k => Assert.True(Under(k, "gan/generator"), $"the generator's step wrote {k}"));
        foreach (var key in state.Keys.Where(k => Under(k, "gan/discriminator")))
            Check.SameTensor(state[key], after[key], key);
        Assert.False(Check.Identical(state["gan/generator/net/hidden1/w"], after["gan/generator/net/hidden1/w"]), "the generator moved");
        Assert.True(float.IsFinite(loss.item<float>()));
    }

    [Fact]
    public void The_discriminator_step_updates_only_the_discriminator()
    {
        var (gan, state) = Fresh();
        var (images, labels) = Digits.Value;
        var step = Nj.PureTracked((Tensor real, Tensor fake, Tensor y) => gan.Discriminator.Train(real, fake, Condition.Of(y)).Loss);
        var (after, _, _, modified, _) = step(state, images[..64], tanh(randn(64, 64)), labels[..64]);
        Assert.Contains(modified, k => Under(k, "gan/discriminator"));
        Assert.All(modified, k => Assert.True(Under(k, "gan/discriminator"), $"the discriminator's step wrote {k}"));
        foreach (var key in state.Keys.Where(k => !Under(k, "gan/discriminator")))
            Check.SameTensor(state[key], after[key], key);
    }

    [Fact]
    public void A_training_step_moves_the_average_by_one_minus_the_decay_towards_the_generator()
    {
        var (gan, state) = Fresh();
        var (images, labels) = Digits.Value;
        var (after, _) = Nj.Pure(gan.Train)(state, images[..64], labels[..64], seed: 5);
        const string w = "hidden1/w";
        var expected = state["gan/average/" + w] * 0.995 + after["gan/generator/net/" + w] * 0.005;
        Check.Close(expected, after["gan/average/" + w], 1e-6, "the average");
        // The running statistics of the normalisation are averaged like the weights.
        Check.Close(state["gan/average/norm1/var"] * 0.995 + after["gan/generator/net/norm1/var"] * 0.005, after["gan/average/norm1/var"], 1e-6, "the running variance");
        Assert.Equal(1L, after["gan/generator/opt/count"].item<long>());
        Assert.Equal(1L, after["gan/discriminator/opt/count"].item<long>());
    }

    private sealed class Holder : Module
    {
        public Holder(string name) : base(name) { }

        public void Set(float w, long n)
        {
            Put("w", Get("w", () => zeros(2)) * 0 + w);
            Put("n", Get("n", () => zeros(1, dtype: ScalarType.Int64)) * 0 + n);
        }
    }

    [Fact]
    public void A_moving_average_starts_as_a_copy_averages_floating_entries_and_copies_the_others()
    {
        var source = new Holder("source");
        var average = new Holder("average");
        var (state, _) = Nj.Pure(() => { source.Set(1, 3); MovingAverage.Update(average, source, 0.9); return 0; })(States.Empty, create: true);
        Check.SameTensor(tensor(new[] { 1f, 1f }), state["average/w"], "a copy on first use");
        (state, _) = Nj.Pure(() => { source.Set(3, 7); MovingAverage.Update(average, source, 0.9); return 0; })(state);
        Check.Close(tensor(new[] { 1.2f, 1.2f }), state["average/w"], 1e-6, "0.9 * 1 + 0.1 * 3");
        Check.SameTensor(tensor(new[] { 7L }), state["average/n"], "integers are copied");
        Assert.Throws<ArgumentOutOfRangeException>(() => MovingAverage.Update(average, source, 1.0));
    }

    [Fact]
    public void A_short_run_trains_both_players_and_is_the_same_for_the_same_seed()
    {
        var (images, labels) = Digits.Value;
        var reports = new List<EpochReport>();
        var (gan, start) = Fresh(seed: 3);
        var steps = 0;
        var trained = GanTraining.Train(gan, start, images, labels, epochs: 3, batchSize: 64, seed: 3,
            onStep: () => steps++, onEpoch: reports.Add);
        Assert.Equal(3 * (512 / 64), steps);
        Assert.Equal([1, 2, 3], reports.Select(r => r.Epoch));
        Assert.All(reports, r => Assert.True(double.IsFinite(r.DiscriminatorLoss) && double.IsFinite(r.GeneratorLoss)));
        // The losses move from epoch to epoch: both players learn.
        Assert.NotEqual(reports[0].GeneratorLoss, reports[2].GeneratorLoss);
        Assert.NotEqual(reports[0].DiscriminatorLoss, reports[2].DiscriminatorLoss);
        Assert.Equal(24L, trained["gan/generator/opt/count"].item<long>());

        var (again, start2) = Fresh(seed: 3);
        Check.SameState(trained, GanTraining.Train(again, start2, images, labels, epochs: 3, batchSize: 64, seed: 3), "same seed");
    }

    [Fact]
    public void Donated_steps_update_the_average_in_place_with_the_same_numbers_as_plain_steps()
    {
        var (images, labels) = Digits.Value;
        var (x, y) = (images[..64], labels[..64]);
        var (gan, start) = Fresh(seed: 4);
        var plain = Nj.Pure(gan.Train);
        var donated = Nj.Pure(gan.Train, donate: true);
        var (p, d) = (start.Map((_, t) => t.clone()), start.Map((_, t) => t.clone()));
        var averaged = d["gan/average/hidden1/w"];
        for (long step = 0; step < 3; step++)
        {
            (p, _) = plain(p, x, y, seed: step);
            (d, _) = donated(d, x, y, seed: step);
        }
        Assert.Same(averaged, d["gan/average/hidden1/w"]);
        Check.SameState(p, d, "donated and plain steps");
        Assert.False(Nj.Pure((Tensor t) => Nj.MayUpdateInPlace(t))(p, p["gan/average/hidden1/w"]).Item2, "not inside a call that owns it");
    }

    [Fact]
    public void The_checkpoint_loads_into_a_fresh_model_that_samples_the_same_images()
    {
        var (gan, state) = Fresh();
        var (images, labels) = Digits.Value;
        state = GanTraining.Train(gan, state, images, labels, epochs: 1, batchSize: 64, seed: 0);
        var path = Path.Combine(Path.GetTempPath(), $"ninjax-gan-{Guid.NewGuid():N}.safetensors");
        try
        {
            GanTraining.Save(path, state, steps: 8);
            var fresh = new ConditionalGan(new GanOptions(Hidden: 64));
            var loaded = GanTraining.Load(path, fresh);
            Check.SameState(state, loaded, "loaded");
            var (expected, digits) = GanTraining.SampleEvenly(gan, state, perDigit: 3, seed: 9);
            var (actual, _) = GanTraining.SampleEvenly(fresh, loaded, perDigit: 3, seed: 9);
            Check.SameTensor(expected, actual, "samples");
            Assert.Equal(new long[] { 30, 64 }, actual.shape);
            Assert.True(actual.min().item<float>() >= 0 && actual.max().item<float>() <= 1, "pixels in [0, 1]");
            Assert.Equal([0L, 0L, 0L, 1L], digits.data<long>().Take(4));

            // A model of another width is refused, every mismatch named.
            var wider = Assert.Throws<CheckpointMismatchException>(() => GanTraining.Load(path, new ConditionalGan(new GanOptions(Hidden: 96))));
            Assert.Contains("gan/generator/net/hidden1/w", wider.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Conditional_accuracy_is_the_fraction_classified_as_the_digit_asked_for()
    {
        var labels = tensor(new long[] { 0, 1, 2, 3 });
        var accuracy = GanTraining.ConditionalAccuracy(_ => tensor(new long[] { 0, 1, 5, 3 }), zeros(4, 64), labels);
        Assert.Equal(0.75, accuracy);
    }

    [Fact]
    public void Crc32_matches_the_standard_check_value()
    {
        Assert.Equal(0xCBF43926u, Png.Crc32(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0u, Png.Crc32([]));
    }

    [Fact]
    public void A_png_holds_valid_chunks_and_the_pixels_it_was_given()
    {
        var pixels = Enumerable.Range(0, 7 * 3).Select(i => (byte)(i * 12)).ToArray();
        var bytes = Png.Encode(7, 3, pixels);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        var chunks = new List<(string Type, byte[] Data)>();
        for (var at = 8; at < bytes.Length;)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            var typeAndData = bytes.AsSpan(at + 4, 4 + length);
            Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at + 8 + length)), Png.Crc32(typeAndData));
            chunks.Add((Encoding.ASCII.GetString(typeAndData[..4]), typeAndData[4..].ToArray()));
            at += 12 + length;
        }
        Assert.Equal(["IHDR", "IDAT", "IEND"], chunks.Select(c => c.Type));
        var header = chunks[0].Data;
        Assert.Equal(7, BinaryPrimitives.ReadInt32BigEndian(header));
        Assert.Equal(3, BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4)));
        Assert.Equal(new byte[] { 8, 0, 0, 0, 0 }, header[8..]);
        using var zlib = new ZLibStream(new MemoryStream(chunks[1].Data), CompressionMode.Decompress);
        using var raw = new MemoryStream();
        zlib.CopyTo(raw);
        var rows = raw.ToArray();
        Assert.Equal(3 * 8, rows.Length);
        for (var r = 0; r < 3; r++)
        {
            Assert.Equal(0, rows[r * 8]);
            Assert.Equal(pixels[(r * 7)..(r * 7 + 7)], rows[(r * 8 + 1)..(r * 8 + 8)]);
        }
        Assert.Empty(chunks[2].Data);
        Assert.Throws<ArgumentException>(() => Png.Encode(7, 3, pixels[..20]));
    }

    [Fact]
    public void The_grid_puts_each_image_in_its_cell_enlarged()
    {
        // Image i is all (i + 1) / 10, except its top-left pixel, which is white.
        var images = (arange(1, 7, dtype: float32) / 10).view(6, 1).repeat(1, 64);
        images[.., 0] = tensor(1f);
        var (width, height, pixels) = SampleGrid.Render(images, rows: 2, columns: 3, scale: 2, gap: 1);
        Assert.Equal(3 * 17 + 1, width);
        Assert.Equal(2 * 17 + 1, height);
        byte At(int x, int y) => pixels[y * width + x];
        Assert.Equal(0, At(0, 0));
        Assert.Equal(255, At(1, 1));
        Assert.Equal(255, At(2, 2));
        Assert.Equal((byte)Math.Round(0.1 * 255), At(3, 1));
        // Row 1, column 2: image 5, value 0.6.
        Assert.Equal((byte)Math.Round(0.6 * 255), At(1 + 2 * 17 + 5, 1 + 17 + 5));
        Assert.Throws<ArgumentException>(() => SampleGrid.Render(images, rows: 2, columns: 2));
    }
}
