<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Contracts\Debug\ExceptionHandler;
use Throwable;

/** The app's exception handler, as far as report() goes: what it was given, in order. */
class RecordingHandler implements ExceptionHandler
{
    /** @var array<int, Throwable> */
    public $reported = [];

    public function report(Throwable $e)
    {
        $this->reported[] = $e;
    }

    public function shouldReport(Throwable $e)
    {
        return true;
    }

    public function render($request, Throwable $e)
    {
        throw $e;
    }

    public function renderForConsole($output, Throwable $e)
    {
    }
}
