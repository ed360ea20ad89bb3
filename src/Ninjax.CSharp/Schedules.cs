using Microsoft.FSharp.Core;

namespace Ninjax.CSharp;

/// <summary>Learning-rate schedules in Optax's shape, as C# functions from the step (the number of updates applied
/// before it, 0 at the first update) to the learning rate. Pass one to an optimizer in <see cref="Optimizers"/> in place
/// of a constant learning rate. Each forwards to the F# <c>Schedule</c> module.</summary>
public static class Schedules
{
    /// <summary>The F# schedule as a C# function.</summary>
    private static Func<long, double> ToFunc(FSharpFunc<long, double> schedule) => schedule.Invoke;

    /// <summary>A C# schedule as an F# one, with a null check naming the parameter.</summary>
    internal static FSharpFunc<long, double> ToFSharp(Func<long, double>? schedule, string parameter)
    {
        ArgumentNullException.ThrowIfNull(schedule, parameter);
        return FuncConvert.FromFunc(schedule);
    }

    /// <summary>The same value at every step.</summary>
    /// <param name="value">The learning rate; finite.</param>
    /// <returns>The schedule.</returns>
    public static Func<long, double> Constant(double value) => ToFunc(ScheduleModule.constant(value));

    /// <summary>Rises linearly from <paramref name="initValue"/> to <paramref name="peakValue"/> over
    /// <paramref name="warmupSteps"/> steps, then stays at <paramref name="peakValue"/>.</summary>
    /// <param name="initValue">The value at step 0.</param>
    /// <param name="peakValue">The value from step <paramref name="warmupSteps"/> on.</param>
    /// <param name="warmupSteps">The length of the warmup; at least 1.</param>
    /// <returns>The schedule.</returns>
    public static Func<long, double> LinearWarmup(double initValue, double peakValue, long warmupSteps) =>
        ToFunc(ScheduleModule.linearWarmup(initValue, peakValue, warmupSteps));

    /// <summary>Rises linearly from <paramref name="initValue"/> at step 0 to <c>after(0)</c> at step
    /// <paramref name="warmupSteps"/>, then follows <paramref name="after"/> with its step counted from the end of the warmup.</summary>
    /// <param name="initValue">The value at step 0.</param>
    /// <param name="warmupSteps">The length of the warmup; at least 1.</param>
    /// <param name="after">The schedule to follow after the warmup.</param>
    /// <returns>The schedule.</returns>
    public static Func<long, double> LinearWarmupInto(double initValue, long warmupSteps, Func<long, double> after) =>
        ToFunc(ScheduleModule.linearWarmupInto(initValue, warmupSteps, ToFSharp(after, nameof(after))));

    /// <summary>Falls from <paramref name="initValue"/> along half a cosine to <c>alpha * initValue</c> at step
    /// <paramref name="decaySteps"/> and stays there (Optax's <c>cosine_decay_schedule</c>).</summary>
    /// <param name="initValue">The value at step 0.</param>
    /// <param name="decaySteps">The length of the decay; at least 1.</param>
    /// <param name="alpha">The final value as a fraction of the initial one, in [0, 1].</param>
    /// <returns>The schedule.</returns>
    public static Func<long, double> CosineDecay(double initValue, long decaySteps, double alpha = 0) =>
        ToFunc(ScheduleModule.cosineDecay(initValue, decaySteps, alpha));

    /// <summary>Linear warmup from <paramref name="initValue"/> to <paramref name="peakValue"/> over
    /// <paramref name="warmupSteps"/> steps, then cosine decay to <paramref name="endValue"/> at step
    /// <paramref name="decaySteps"/> (counted from 0, warmup included, as Optax's <c>warmup_cosine_decay_schedule</c>).</summary>
    /// <param name="initValue">The value at step 0.</param>
    /// <param name="peakValue">The value at the end of the warmup.</param>
    /// <param name="warmupSteps">The length of the warmup; 0 for none.</param>
    /// <param name="decaySteps">The step at which the decay ends; more than <paramref name="warmupSteps"/>.</param>
    /// <param name="endValue">The value from step <paramref name="decaySteps"/> on.</param>
    /// <returns>The schedule.</returns>
    public static Func<long, double> WarmupCosineDecay(double initValue, double peakValue, long warmupSteps, long decaySteps, double endValue = 0) =>
        ToFunc(ScheduleModule.warmupCosineDecay(initValue, peakValue, warmupSteps, decaySteps, endValue));
}
