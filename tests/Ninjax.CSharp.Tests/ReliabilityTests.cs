using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A running average kept the way code ported from PyTorch keeps it: updated in place.</summary>
public sealed class InPlaceAverage : Module
{
    /// <summary>A top-level module.</summary>
    public InPlaceAverage(string name = "avg") : base(name) { }

    /// <summary>Moves the average towards <paramref name="x"/> in place and puts it back.</summary>
    public Tensor Update(Tensor x)
    {
        var avg = Get("value", () => zeros(3));
        avg.mul_(0.9).add_(x, alpha: 0.1);
        return Put("value", avg).sum();
    }
}

/// <summary>Issue 12 from C#: the state a caller holds never changes behind its back, writes never get
/// lost, and mistakes give exceptions that name what went wrong.</summary>
public class ReliabilityTests
{
    [Fact]
    public void An_in_place_update_of_the_callers_tensor_fails_naming_the_key_unless_the_state_is_donated()
    {
        var model = new InPlaceAverage();
        var x = ones(3);
        var state = Nj.Init(model.Update)(States.Empty, x, seed: 0);
        var error = Raises<InvalidOperationException>(() => Nj.Pure(model.Update, name: "update")(state, x));
        Assert.Contains("'avg/value'", error.Message);
        Assert.Contains("in place", error.Message);
        Assert.Contains("donate: true", error.Message);

        var donated = States.From(("avg/value", zeros(3)));
        var (next, _) = Nj.Pure(model.Update, donate: true)(donated, x);
        SameTensor(Vec(0.1f, 0.1f, 0.1f), next["avg/value"], "donating allows the in-place form");
        Assert.True(donated.IsDonated);
    }

    [Fact]
    public async Task A_write_after_an_await_raises_instead_of_being_lost()
    {
        var gate = new TaskCompletionSource();
        var late = Nj.Pure(async (Tensor x) =>
        {
            await gate.Task;
            Nj.Put("late", x);
        }, name: "late writer");
        var (_, pending) = late(States.Empty, ones(1), create: true);
        gate.SetResult();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => pending);
        Assert.Contains("late writer", error.Message);
    }

    [Fact]
    public void A_write_from_another_thread_inside_a_call_raises()
    {
        Exception? fromWorker = null;
        var (state, _) = Nj.Pure((Tensor x) =>
        {
            var worker = new Thread(() =>
            {
                try { Nj.Put("a", x); }
                catch (Exception e) { fromWorker = e; }
            });
            worker.Start();
            worker.Join();
            return Nj.Put("own", x);
        }, name: "spread")(States.Empty, ones(1), create: true);
        Assert.IsType<InvalidOperationException>(fromWorker);
        Assert.Contains("from thread", fromWorker!.Message);
        Assert.True(state.ContainsKey("own"));
        Assert.False(state.ContainsKey("a"));
    }

    [Fact]
    public async Task A_second_call_on_a_state_being_donated_fails()
    {
        var counter = new Counter("c");
        var state = Nj.Init(counter.Increment)(States.Empty, seed: 0);
        using var inside = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var slow = Nj.Pure(() =>
        {
            inside.Set();
            release.Wait(TimeSpan.FromMinutes(1));
            return counter.Increment();
        }, name: "slow", donate: true);
        var first = Task.Run(() => slow(state));
        Assert.True(inside.Wait(TimeSpan.FromMinutes(1)));
        var error = Raises<InvalidOperationException>(() => Nj.Pure(counter.Increment, name: "second", donate: true)(state));
        Assert.Contains("being donated to slow", error.Message);
        release.Set();
        var (next, _) = await first;
        SameTensor(Vec(1), next["c/count"], "the first call ran, once");
    }

    [Fact]
    public void A_flipped_byte_in_a_checkpoint_is_caught_naming_the_file_and_the_key()
    {
        var folder = Directory.CreateTempSubdirectory("ninjax-cs-ckpt-");
        try
        {
            var path = Path.Combine(folder.FullName, "model.safetensors");
            var state = States.From(("model/w", arange(16).to_type(float32)), ("model/b", zeros(4)));
            Checkpoints.Save(path, state, step: 3);
            var bytes = File.ReadAllBytes(path);
            // The data is at the end of the file, model/w (64 bytes) last of all: flip one of its bytes.
            bytes[^10] ^= 0x40;
            File.WriteAllBytes(path, bytes);
            var error = Raises<InvalidDataException>(() => Checkpoints.Load(path));
            Assert.Contains(path, error.Message);
            Assert.Contains("'model/w'", error.Message);
            Assert.Contains("checksum", error.Message);

            var reserved = Raises<ArgumentException>(() =>
                Checkpoints.Save(path, state, strings: new Dictionary<string, string> { ["ninjax.x"] = "1" }));
            Assert.Contains("'ninjax.x'", reserved.Message);
            var key = Raises<ArgumentException>(() => Checkpoints.Save(path, States.From(("__metadata__", ones(1)))));
            Assert.Contains("'__metadata__'", key.Message);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void Null_tensors_are_refused_naming_the_key()
    {
        var state = States.From(("m/w", ones(2)));
        var with = Raises<ArgumentNullException>(() => state.With("m/b", null!));
        Assert.Contains("'m/b'", with.Message);
        var map = Raises<InvalidOperationException>(() => state.Map((key, t) => null!));
        Assert.Contains("'m/w'", map.Message);
    }
}
