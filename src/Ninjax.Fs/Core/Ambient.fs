namespace Ninjax

open System
open System.Threading

/// One purified call (or one impure stretch inside a program) in progress: its environment and
/// its world, which impure code advances by running Prog operations against it.
[<Sealed; AllowNullLiteral>]
type Frame internal (env: Env, world: World, parent: Frame) =
    /// The environment of the call.
    member _.Env = env
    /// The world as impure code has advanced it so far.
    member val World = world with get, set
    /// The frame this one runs inside, or null.
    member _.Parent = parent

/// The ambient context that impure code (modules calling Get and Put) runs against. It is an
/// interpreter of Prog: every impure operation is a Prog operation run on the current frame.
/// Frames are per thread and per async flow, so parallel purified calls never see each other.
module Ambient =

    let private current = AsyncLocal<Frame>()

    // The name scope entered outside any purified call (Nj.scope while building modules).
    let private outside = AsyncLocal<string>()

    /// The innermost frame, or null outside any purified call.
    let tryCurrent () : Frame = current.Value

    /// The current name scope: the innermost call's, or the one entered outside any call ("" is
    /// the root). Entries resolve under it, and modules constructed by name take their paths
    /// under it, as in ninjax.
    let currentScope () : string =
        match current.Value with
        | null -> match outside.Value with null -> "" | s -> s
        | f -> f.Env.Scope

    /// The language of the code calling Ninjax, for an error message: the current call's (free)
    /// inside a purified call, else found by walking the stack (error paths only).
    let language () : Language =
        match current.Value with
        | null -> Caller.fromStack ()
        | f -> f.Env.Language

    /// The innermost frame; a clear error outside any purified call.
    let currentFrame () : Frame =
        match current.Value with
        | null ->
            raise (
                InvalidOperationException(
                    sprintf
                        "No Ninjax context: state can only be read or written inside a purified call. Wrap the function with %s and call that."
                        (Text.code (Caller.fromStack ()) "Nj.purify or Nj.init" "Nj.Pure or Nj.Init")
                )
            )
        | f -> f

    /// Makes a new frame current; pair with pop in a finally.
    let push (env: Env) (world: World) : Frame =
        let f = Frame(env, world, current.Value)
        current.Value <- f
        f

    /// Restores the frame that was current before this one.
    let pop (frame: Frame) : unit = current.Value <- frame.Parent

    /// Runs a program against the current frame and advances it: the impure interpreter.
    let exec (program: Nj<'T>) : 'T =
        let frame = currentFrame ()
        let struct (value, world) = Prog.runIn frame.Env frame.World program
        frame.World <- world
        value

    /// Turns impure code into a program: it runs in a frame holding the program's world, and the
    /// world it leaves behind is the program's result world.
    let ofImpure (thunk: unit -> 'T) : Nj<'T> =
        Nj(fun env world ->
            let frame = push env world
            try
                let value = thunk ()
                struct (value, frame.World)
            finally
                pop frame)

    /// Runs impure code in an absolute name scope: inside a call its entries resolve under it
    /// (Prog.scopeAt), and anywhere the modules it constructs by name take their paths under it.
    let inScope (path: string) (f: unit -> 'T) : 'T =
        match current.Value with
        | null ->
            let before = outside.Value
            outside.Value <- path
            try
                f ()
            finally
                outside.Value <- before
        | _ -> exec (Prog.scopeAt path (ofImpure f))
