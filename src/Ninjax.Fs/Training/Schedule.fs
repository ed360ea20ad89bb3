namespace Ninjax

open System

/// A learning-rate schedule: the value to use at a step, given how many updates were applied
/// before it (0 at the first update). Optimizers read the step from the int64 <c>count</c> entry
/// of their state, so a schedule resumes where it left off when the state is saved and restored.
type Schedule = int64 -> float

/// Learning-rate schedules in Optax's shape. All are pure functions of the step.
[<RequireQualifiedAccess>]
module Schedule =

    let private checkFinite (name: string) (value: float) =
        if Double.IsNaN value || Double.IsInfinity value then
            raise (ArgumentOutOfRangeException(name, value, sprintf "The schedule's %s must be a finite number." name))

    let private checkSteps (name: string) (steps: int64) =
        if steps <= 0L then
            raise (ArgumentOutOfRangeException(name, steps, sprintf "The schedule's %s must be at least 1." name))

    /// The same value at every step.
    let constant (value: float) : Schedule =
        checkFinite "value" value
        fun _ -> value

    /// Rises linearly from <paramref name="initValue"/> at step 0 to <c>after 0</c> at step
    /// <paramref name="warmupSteps"/>, then follows <paramref name="after"/> with its step
    /// counted from the end of the warmup.
    let linearWarmupInto (initValue: float) (warmupSteps: int64) (after: Schedule) : Schedule =
        checkFinite "initValue" initValue
        checkSteps "warmupSteps" warmupSteps
        if isNull (box after) then raise (ArgumentNullException("after", "Give the schedule to follow after the warmup."))
        fun step ->
            if step < warmupSteps then
                let peak = after 0L
                initValue + (peak - initValue) * float step / float warmupSteps
            else
                after (step - warmupSteps)

    /// Rises linearly from <paramref name="initValue"/> to <paramref name="peakValue"/> over
    /// <paramref name="warmupSteps"/> steps, then stays at <paramref name="peakValue"/>.
    let linearWarmup (initValue: float) (peakValue: float) (warmupSteps: int64) : Schedule =
        linearWarmupInto initValue warmupSteps (constant peakValue)

    /// Falls from <paramref name="initValue"/> along half a cosine to
    /// <c>alpha * initValue</c> at step <paramref name="decaySteps"/> and stays there (Optax's
    /// cosine_decay_schedule).
    let cosineDecay (initValue: float) (decaySteps: int64) (alpha: float) : Schedule =
        checkFinite "initValue" initValue
        checkSteps "decaySteps" decaySteps
        if not (alpha >= 0.0 && alpha <= 1.0) then
            raise (ArgumentOutOfRangeException("alpha", alpha, "The cosine schedule's alpha (the final value as a fraction of the initial one) must lie in [0, 1]."))
        fun step ->
            let progress = float (min step decaySteps) / float decaySteps
            let cosine = 0.5 * (1.0 + Math.Cos(Math.PI * progress))
            initValue * ((1.0 - alpha) * cosine + alpha)

    /// Linear warmup from <paramref name="initValue"/> to <paramref name="peakValue"/> over
    /// <paramref name="warmupSteps"/> steps, then cosine decay to <paramref name="endValue"/> at
    /// step <paramref name="decaySteps"/> (counted from 0, warmup included, as in Optax's
    /// warmup_cosine_decay_schedule).
    let warmupCosineDecay (initValue: float) (peakValue: float) (warmupSteps: int64) (decaySteps: int64) (endValue: float) : Schedule =
        checkFinite "peakValue" peakValue
        checkFinite "endValue" endValue
        if decaySteps <= warmupSteps then
            raise (
                ArgumentOutOfRangeException(
                    "decaySteps", decaySteps, sprintf "decaySteps (%d) counts the warmup too, so it must exceed warmupSteps (%d)." decaySteps warmupSteps
                )
            )
        if warmupSteps < 0L then
            raise (ArgumentOutOfRangeException("warmupSteps", warmupSteps, "warmupSteps cannot be negative."))
        let span = decaySteps - warmupSteps
        let decay: Schedule =
            fun step ->
                let progress = float (min step span) / float span
                endValue + (peakValue - endValue) * 0.5 * (1.0 + Math.Cos(Math.PI * progress))
        if warmupSteps = 0L then decay else linearWarmupInto initValue warmupSteps decay
